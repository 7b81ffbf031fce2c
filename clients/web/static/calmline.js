// Shared by every page: sign-in, a self-reconnecting event socket, labels, small DOM helpers.
"use strict";
const Calmline = {
  MOVES: {
    listen: "Listen", thank: "Thank them", clarify: "Clarify the facts", restate: "Restate the problem",
    empathize: "Empathize", apologize: "Apologize", speed_of_need: "Ask how soon they need it",
    make_it_right: "Make it right", extra_mile: "Go the extra mile", follow_up: "Promise a follow-up",
  },
  WARNINGS: {
    interrupting: "Interrupting", insincere_apology: "Insincere apology", blame: "Blaming", excuse: "Making excuses",
    policy_wall: "Policy wall", arguing: "Arguing", glib: "Too light-hearted", passing_the_buck: "Passing the buck",
  },
  token() {
    const q = new URLSearchParams(location.search).get("token");
    if (q) {
      localStorage.setItem("calmline.token", q);
      history.replaceState(null, "", location.pathname);  // keep the token out of the address bar
    }
    return localStorage.getItem("calmline.token");
  },
  async api(path, token) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
    if (!r.ok) {
      let message = r.statusText;
      try { message = (await r.json()).message || message; } catch (e) { /* not JSON */ }
      const err = new Error(r.status === 401 ? "Unknown token: sign in again." : message);
      err.status = r.status;
      throw err;
    }
    return r.json();
  },
  signOut() { localStorage.removeItem("calmline.token"); location.reload(); },
  // Reconnects with backoff from 0.5 s to 30 s; the delay starts again at 0.5 s only once a connection
  // has stayed up 10 s, so a socket the server keeps closing (1013: too slow) is not retried in a loop.
  connect(path, token, onEvent, onState) {
    const FIRST = 500, MOST = 30000, STEADY = 10000;
    let delay = FIRST;
    const open = () => {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const sep = path.includes("?") ? "&" : "?";
      const ws = new WebSocket(`${proto}//${location.host}${path}${sep}token=${encodeURIComponent(token)}`);
      let steady = null;
      ws.onopen = () => { steady = setTimeout(() => { delay = FIRST; }, STEADY); onState(true); };
      ws.onmessage = (m) => onEvent(JSON.parse(m.data));
      ws.onclose = () => {
        clearTimeout(steady);
        onState(false);
        setTimeout(open, Math.min(MOST, delay * (1 + 0.25 * Math.random())));  // jittered: pages do not all return at once
        delay = Math.min(delay * 2, MOST);
      };
    };
    open();
  },
  // Sign in with a saved or typed token; calls onReady(me, token) once whoami accepts it for one of `roles`.
  async signIn(roles, onReady) {
    const form = document.getElementById("signin");
    const error = document.getElementById("signin-error");
    const tryToken = async (token) => {
      try {
        const me = await Calmline.api("/v1/whoami", token);
        if (!roles.includes(me.role)) {
          error.textContent = `This page is for ${roles.join(" or ")}s; you signed in as ${me.role === "agent" ? "agent " + me.agent_id : "a " + me.role}.`;
          return false;
        }
        localStorage.setItem("calmline.token", token);
        form.hidden = true;
        onReady(me, token);
        return true;
      } catch (e) { error.textContent = e.message; return false; }
    };
    const saved = Calmline.token();
    if (saved && await tryToken(saved)) return;
    form.hidden = false;
    document.getElementById("token").focus();
    form.onsubmit = async (ev) => { ev.preventDefault(); await tryToken(document.getElementById("token").value.trim()); };
  },
  el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  },
  clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  },
  heatColor(h) { return h >= 0.66 ? "var(--hot)" : h >= 0.33 ? "var(--warm)" : "var(--cool)"; },
};
