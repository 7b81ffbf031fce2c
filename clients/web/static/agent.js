// The agent panel: follows this agent's live call.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const partial = {};  // speaker -> <li> showing the partial being spoken

  function line(ev, cls) {
    const li = document.createElement("li");
    li.className = `${ev.speaker} ${cls}`;
    li.innerHTML = `<span class="who"></span><span class="text"></span>`;
    li.querySelector(".who").textContent = ev.speaker === "caller" ? "Caller" : "You";
    li.querySelector(".text").textContent = ev.text;
    return li;
  }

  function onEvent(ev) {
    const list = $("transcript");
    if (ev.type === "call.started") {
      list.innerHTML = "";
      $("call-status").textContent = `On call ${ev.call_id}`;
    } else if (ev.type === "call.ended") {
      $("call-status").textContent = `Call ${ev.call_id} ended (${Math.round(ev.summary.duration)} s)`;
    } else if (ev.type === "transcript.partial") {
      if (!partial[ev.speaker]) { partial[ev.speaker] = line(ev, "partial"); list.appendChild(partial[ev.speaker]); }
      partial[ev.speaker].querySelector(".text").textContent = ev.text;
    } else if (ev.type === "transcript.final") {
      const li = line(ev, "final");
      if (partial[ev.speaker]) { partial[ev.speaker].replaceWith(li); delete partial[ev.speaker]; }
      else list.appendChild(li);
    }
    list.scrollTop = list.scrollHeight;
  }

  Calmline.signIn((me, token) => {
    if (me.role !== "agent") { $("signin-error").textContent = "Use an agent token here."; $("signin").hidden = false; return; }
    $("who").textContent = `Agent ${me.agent_id}`;
    $("panel").hidden = false;
    Calmline.connect(`/v1/agents/${encodeURIComponent(me.agent_id)}/events`, token, onEvent, (up) => {
      $("conn").textContent = up ? "live" : "reconnecting…";
      $("conn").className = "conn " + (up ? "on" : "off");
    });
  });
})();
