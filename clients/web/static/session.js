// Sign-in and a self-reconnecting event socket, shared by every page.
"use strict";
const Calmline = {
  token() {
    const q = new URLSearchParams(location.search).get("token");
    if (q) { localStorage.setItem("calmline.token", q); history.replaceState(null, "", location.pathname); }
    return localStorage.getItem("calmline.token");
  },
  async whoami(token) {
    const r = await fetch("/v1/whoami", { headers: { Authorization: "Bearer " + token } });
    if (!r.ok) throw new Error(r.status === 401 ? "Unknown token" : "Sign-in failed (" + r.status + ")");
    return r.json();
  },
  signOut() { localStorage.removeItem("calmline.token"); location.reload(); },
  connect(path, token, onEvent, onState) {
    let delay = 500;
    const open = () => {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${proto}//${location.host}${path}?token=${encodeURIComponent(token)}`);
      ws.onopen = () => { delay = 500; onState(true); };
      ws.onmessage = (m) => onEvent(JSON.parse(m.data));
      ws.onclose = () => { onState(false); setTimeout(open, delay); delay = Math.min(delay * 2, 8000); };
    };
    open();
  },
  async signIn(onReady) {
    const form = document.getElementById("signin");
    const tryToken = async (token) => {
      try { onReady(await Calmline.whoami(token), token); return true; }
      catch (e) { document.getElementById("signin-error").textContent = e.message; return false; }
    };
    const saved = Calmline.token();
    if (saved && await tryToken(saved)) return;
    form.hidden = false;
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const token = document.getElementById("token").value.trim();
      if (await tryToken(token)) { localStorage.setItem("calmline.token", token); form.hidden = true; }
    };
  },
};
