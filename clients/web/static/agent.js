// The agent panel: the floor, the next move, heat, moves done, warnings and the transcript of this agent's call.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = Calmline.el;
  const CHECKLIST = ["thank", "clarify", "restate", "empathize", "apologize", "speed_of_need", "make_it_right",
                     "extra_mile", "follow_up"];
  const FLOOR = {
    caller_speaking: ["hold", "Caller speaking: hold", "Let them finish. Note the facts."],
    caller_pausing: ["hold", "Caller pausing: hold", "They may not be done yet."],
    overlap: ["stop", "You're talking over the caller", "Stop and let them finish."],
    agent_speaking: ["you", "You're speaking", ""],
    open: ["turn", "Your turn", "Use the move below."],
  };
  let call = null;
  const partial = {};

  function resetCall(ev) {
    call = { id: ev.call_id, startedTs: ev.ts, t: 0, done: new Set() };
    $("transcript").innerHTML = "";
    $("warnings").innerHTML = "";
    for (const k of Object.keys(partial)) delete partial[k];
    renderChecklist();
    setHeat(null);
    showCue(null);
    setFloor("caller_speaking", false, false);
    $("floor-text").textContent = "Call started";
    $("floor-sub").textContent = "Listen first.";
    $("floor").className = "floor hold";
  }

  function renderChecklist() {
    $("checklist").replaceChildren(...CHECKLIST.map((m) => el("li", { class: call && call.done.has(m) ? "done" : "", "data-move": m },
      el("span", { class: "tick", "aria-hidden": "true" }, call && call.done.has(m) ? "✓" : ""), Calmline.MOVES[m])));
  }

  function setFloor(state, venting, finished) {
    let [kind, text, sub] = FLOOR[state] || FLOOR.open;
    if (state === "open" && !finished) { kind = "idle"; text = "Floor open"; sub = ""; }
    if (venting && kind === "hold") sub = "They are venting. Let them finish; note the facts.";
    $("floor").className = `floor ${kind}`;
    $("floor").dataset.state = state;
    $("floor-text").textContent = text;
    $("floor-sub").textContent = sub;
  }

  function showCue(ev) {
    const box = $("cue");
    if (!ev) {
      box.className = "cue empty";
      $("cue-move").textContent = "Next move";
      $("cue-say").textContent = "Suggestions appear here during a call.";
      $("cue-why").textContent = "";
      $("cue-state").textContent = "";
      return;
    }
    box.className = `cue ${ev.hold ? "held" : "released"}`;
    box.dataset.move = ev.move;
    $("cue-move").textContent = Calmline.MOVES[ev.move] || ev.move;
    $("cue-say").textContent = ev.say;
    $("cue-why").textContent = ev.why;
    $("cue-state").textContent = ev.hold ? "Hold: caller has the floor" : "Say it now";
  }

  function setHeat(ev) {
    const h = ev ? ev.heat : 0;
    $("heat-bar").style.width = `${Math.round(h * 100)}%`;
    $("heat-bar").style.background = Calmline.heatColor(h);
    $("heat-meter").setAttribute("aria-valuenow", h.toFixed(2));
    $("heat-trend").textContent = ev ? `${Math.round(h * 100)}% ${{ rising: "▲ rising", falling: "▼ falling", steady: "● steady" }[ev.trend]}` : "";
    $("heat-trend").className = `trend ${ev ? ev.trend : ""}`;
  }

  function warn(ev) {
    const card = el("div", { class: "warning", role: "alert" },
      el("strong", {}, Calmline.WARNINGS[ev.kind] || ev.kind),
      el("q", {}, ev.quote), el("p", {}, ev.advice));
    $("warnings").prepend(card);
    // Stands out at once, then fades so it does not crowd the next move.
    setTimeout(() => card.classList.add("fading"), 12000);
    setTimeout(() => card.remove(), 15000);
  }

  function transcriptLine(ev, cls) {
    return el("li", { class: `${ev.speaker} ${cls}` }, el("span", { class: "who" }, ev.speaker === "caller" ? "Caller" : "You"),
      el("span", { class: "text" }, ev.text));
  }

  function onEvent(ev) {
    if (ev.type === "call.started") resetCall(ev);
    if (!call || ev.call_id !== call.id) return;
    call.t = Math.max(call.t, ev.t);
    const list = $("transcript");
    switch (ev.type) {
      case "floor": setFloor(ev.state, ev.venting, ev.finished_venting); break;
      case "cue": showCue(ev); break;
      case "sentiment": if (ev.speaker === "caller") setHeat(ev); break;
      case "step.done": call.done.add(ev.move); renderChecklist(); break;
      case "warning": warn(ev); break;
      case "transcript.partial":
        if (!partial[ev.speaker]) { partial[ev.speaker] = transcriptLine(ev, "partial"); list.append(partial[ev.speaker]); }
        partial[ev.speaker].querySelector(".text").textContent = ev.text;
        break;
      case "transcript.final": {
        const li = transcriptLine(ev, "final");
        if (partial[ev.speaker]) { partial[ev.speaker].replaceWith(li); delete partial[ev.speaker]; } else list.append(li);
        break;
      }
      case "call.ended":
        $("floor").className = "floor idle";
        $("floor-text").textContent = "Call ended";
        $("floor-sub").textContent = ev.summary.follow_up
          ? `Follow-up: ${ev.summary.follow_up.item} (due ${ev.summary.follow_up.due})` : "";
        $("call-info").textContent = `Call ${ev.call_id} ended after ${Calmline.clock(ev.summary.duration)}`;
        call.ended = true;
        break;
    }
    list.scrollTop = list.scrollHeight;
  }

  setInterval(() => {
    if (call && !call.ended) $("call-info").textContent = `Call ${call.id} · ${Calmline.clock(Date.now() / 1000 - call.startedTs)}`;
  }, 500);

  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "?") $("help").showModal();
    else if (e.key === "t") $("transcript").focus();
    else if (e.key === "n") $("cue").focus();
    else if (e.key === "c" && navigator.clipboard) navigator.clipboard.writeText($("cue-say").textContent);
  });
  $("help-button").onclick = () => $("help").showModal();

  async function showLastCall(token) {
    // Between calls, the last one's outcome and follow-up: what the agent owes the customer.
    try {
      const page = await Calmline.api("/v1/calls?limit=1&status=ended", token);
      const last = page.calls[0];
      if (!last || call) return;
      const s = last.summary || {};
      $("call-info").textContent = `Last call ${last.call_id} · ${Calmline.clock(last.audio_seconds || 0)}`;
      $("floor-sub").textContent = s.follow_up
        ? `Last call's follow-up: ${s.follow_up.item} (due ${s.follow_up.due})` : "The panel wakes up when your next call starts.";
    } catch (e) { /* the live panel works without it */ }
  }

  Calmline.signIn(["agent"], (me, token) => {
    $("who").textContent = `Agent ${me.agent_id}`;
    $("panel").hidden = false;
    renderChecklist();
    showLastCall(token);
    Calmline.connect(`/v1/agents/${encodeURIComponent(me.agent_id)}/events`, token, onEvent, (up) => {
      $("conn").textContent = up ? "live" : "reconnecting…";
      $("conn").className = "conn " + (up ? "on" : "off");
    });
  });
})();
