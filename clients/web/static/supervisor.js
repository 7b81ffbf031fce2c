// The supervisor board: every live call updating live, one followed in detail, and the recorded calls.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = Calmline.el;
  const FLOOR_PILL = { caller_speaking: "hold", caller_pausing: "hold", overlap: "stop", open: "turn", agent_speaking: "" };
  const live = new Map();  // call_id -> {agent, startedTs, heat, floor, warnings, alerts, ended}
  const assignForms = new Map();  // call_id -> its assign form, kept across renders so typing survives updates
  let following = null;
  let token = null;
  const PAGE = 10;
  let offset = 0;

  function describe(ev) {
    switch (ev.type) {
      case "transcript.final": return [ev.speaker === "caller" ? "Caller" : "Agent", ev.text];
      case "cue": return ["Cue", `${Calmline.MOVES[ev.move] || ev.move}${ev.hold ? " (held)" : ""}: ${ev.say}`];
      case "step.done": return ["Step", `${Calmline.MOVES[ev.move] || ev.move}: “${ev.evidence}”`];
      case "warning": return ["Warning", `${Calmline.WARNINGS[ev.kind] || ev.kind}: “${ev.quote}”`];
      case "alert": return ["Alert", `${ev.kind}: ${ev.detail}`];
      case "call.started": return ["Call", ev.agent_id ? `started for agent ${ev.agent_id}` : "started, unassigned"];
      case "call.assigned": return ["Call", `assigned to agent ${ev.agent_id}`];
      case "call.ended": return ["Call", `ended after ${Calmline.clock(ev.summary.duration)}`];
      default: return null;
    }
  }

  function follow(callId) {
    following = callId;
    $("follow-title").textContent = `Following ${callId}`;
    $("follow-hint").innerHTML = "";
    $("follow-hint").append(el("a", { href: `/supervisor/calls/${encodeURIComponent(callId)}` }, "Open the replay"));
    $("follow-events").innerHTML = "";
    for (const row of document.querySelectorAll("#live tbody tr")) row.classList.toggle("selected", row.dataset.call === callId);
    Calmline.api(`/v1/calls/${encodeURIComponent(callId)}/events`, token).then((events) => {
      if (following !== callId) return;
      $("follow-events").innerHTML = "";
      events.forEach(addFollowed);
    }).catch(() => {});
  }

  function addFollowed(ev) {
    const d = describe(ev);
    if (!d) return;
    const list = $("follow-events");
    if (list.querySelector(`[data-seq="${ev.seq}"]`)) return;
    list.append(el("li", { "data-seq": ev.seq, class: ev.type.replace(".", "-") },
      el("span", { class: "t" }, Calmline.clock(ev.t)), el("span", { class: `kind ${ev.type.split(".")[0]}` }, d[0]), d[1]));
    list.scrollTop = list.scrollHeight;
  }

  // A call with no agent yet (a Genesys AudioHook monitor names none): say so, and let the supervisor name one.
  function assignForm(callId) {
    let form = assignForms.get(callId);
    if (form) return form;
    const input = el("input", { name: "agent_id", placeholder: "agent id", size: "8", required: "", "aria-label": `Agent for ${callId}`,
                                pattern: "[A-Za-z0-9][A-Za-z0-9._:-]{0,127}" });
    const status = el("span", { class: "assign-status muted" });
    form = el("form", { class: "assign", onclick: (e) => e.stopPropagation(), onkeydown: (e) => e.stopPropagation() },
      el("span", { class: "unassigned" }, "unassigned"), input, el("button", { type: "submit" }, "Assign"), status);
    form.onsubmit = async (e) => {
      e.preventDefault();
      status.textContent = "…";
      try {
        const r = await fetch(`/v1/calls/${encodeURIComponent(callId)}/agent`, {
          method: "PUT", headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
          body: JSON.stringify({ agent_id: input.value.trim() }) });
        if (!r.ok) { let m = r.statusText; try { m = (await r.json()).message || m; } catch (_) { /* not JSON */ } throw new Error(m); }
        status.textContent = "";  // call.assigned updates the row
      } catch (err) { status.textContent = err.message; }
    };
    assignForms.set(callId, form);
    return form;
  }

  // One <tr> per live call, kept while the call is on the board: rebuilt on every event, a row clicked (or
  // focused) while a busy call streams was gone before the click landed.
  const rows = new Map();

  function renderLive() {
    const focused = document.activeElement;
    const body = $("live").tBodies[0];
    for (const [id, tr] of rows) if (!live.has(id)) { tr.remove(); rows.delete(id); }
    for (const [id, c] of live) {
      let tr = rows.get(id);
      if (!tr) {
        tr = el("tr", { "data-call": id, tabindex: "0",
                        onclick: () => follow(id), onkeydown: (e) => { if (e.key === "Enter") follow(id); } });
        rows.set(id, tr);
        body.append(tr);
      }
      const heat = c.heat || 0;
      const floorKind = FLOOR_PILL[c.floor] ?? "";
      tr.className = id === following ? "selected" : "";
      tr.replaceChildren(
        el("td", {}, id), el("td", {}, c.agent ? c.agent : assignForm(id)),
        el("td", { class: "duration" }, Calmline.clock((c.endedAt || Date.now() / 1000) - c.startedTs)),
        el("td", {}, el("span", { class: "mini-gauge" }, el("span", { style: `width:${Math.round(heat * 100)}%;background:${Calmline.heatColor(heat)}` })),
          `${Math.round(heat * 100)}%`),
        el("td", {}, el("span", { class: `pill ${floorKind}` }, (c.floor || "—").replace("_", " ")), c.venting ? " venting" : ""),
        el("td", { class: c.warnings ? "count-warn" : "" }, c.warnings || "0"),
        el("td", {}, ...c.alerts.map((a) => el("span", { class: "alert-tag", title: a.detail }, a.kind))),
      );
    }
    // The assign form's input moves with its cell: keep the supervisor typing in it.
    if (focused && focused !== document.activeElement && document.contains(focused)) focused.focus();
    $("live-count").textContent = live.size;
    $("no-live").hidden = live.size > 0;
  }

  function onEvent(ev) {
    let c = live.get(ev.call_id);
    if (ev.type === "call.started") {
      c = { agent: ev.agent_id, startedTs: ev.ts, heat: 0, floor: null, warnings: 0, alerts: [], venting: false };
      live.set(ev.call_id, c);
    }
    if (!c) return;
    if (ev.type === "call.assigned") { c.agent = ev.agent_id; assignForms.delete(ev.call_id); }
    if (ev.type === "sentiment" && ev.speaker === "caller") c.heat = ev.heat;
    if (ev.type === "floor") { c.floor = ev.state; c.venting = ev.venting; }
    if (ev.type === "warning") c.warnings += 1;
    if (ev.type === "alert") c.alerts.push(ev);
    if (ev.type === "call.ended") {
      c.endedAt = ev.ts;
      c.floor = "ended";
      setTimeout(() => { live.delete(ev.call_id); assignForms.delete(ev.call_id); renderLive(); loadRecorded(); }, 10000);
    }
    if (ev.call_id === following) addFollowed(ev);
    renderLive();
  }

  async function loadRecorded() {
    const form = new FormData($("search"));
    const params = new URLSearchParams({ limit: PAGE, offset });
    for (const [k, v] of form) if (v) params.set(k, k === "until" ? String(Date.parse(v) / 1000 + 86400) : k === "since" ? String(Date.parse(v) / 1000) : v);
    try {
      const page = await Calmline.api(`/v1/calls?${params}`, token);
      $("recorded").tBodies[0].replaceChildren(...page.calls.map((c) => el("tr", {},
        el("td", {}, new Date(c.started_at * 1000).toLocaleString()),
        el("td", {}, el("a", { href: `/supervisor/calls/${encodeURIComponent(c.call_id)}` }, c.call_id)),
        el("td", {}, c.agent_id ?? el("span", { class: "unassigned" }, "unassigned")), el("td", {}, Calmline.clock(c.audio_seconds || 0)),
        el("td", {}, c.peak_heat == null ? "—" : `${Math.round(c.peak_heat * 100)}%`),
        el("td", { class: c.warning_count ? "count-warn" : "" }, c.warning_count ?? "—"), el("td", {}, c.status))));
      const last = Math.min(offset + PAGE, page.total);
      $("page-info").textContent = page.total ? `${offset + 1}–${last} of ${page.total}` : "No calls match.";
      $("prev").disabled = offset === 0;
      $("next").disabled = last >= page.total;
    } catch (e) { $("page-info").textContent = e.message; }
  }

  $("search").onsubmit = (e) => { e.preventDefault(); offset = 0; loadRecorded(); };
  $("prev").onclick = () => { offset = Math.max(0, offset - PAGE); loadRecorded(); };
  $("next").onclick = () => { offset += PAGE; loadRecorded(); };
  $("signout").onclick = Calmline.signOut;
  setInterval(() => {
    for (const row of document.querySelectorAll("#live tbody tr")) {
      const c = live.get(row.dataset.call);
      if (c) row.querySelector(".duration").textContent = Calmline.clock((c.endedAt || Date.now() / 1000) - c.startedTs);
    }
  }, 1000);

  Calmline.signIn(["supervisor"], (me, t) => {
    token = t;
    $("board").hidden = false;
    $("signout").hidden = false;
    loadRecorded();
    Calmline.connect("/v1/supervise", token, onEvent, (up) => {
      $("conn").textContent = up ? "live" : "reconnecting…";
      $("conn").className = "conn " + (up ? "on" : "off");
      if (up) live.clear();  // the socket sends each live call's current state, then what is new
    });
  });
})();
