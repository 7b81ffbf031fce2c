// Call replay: recording with both waveforms, heat curve, markers for cues, steps, warnings and alerts,
// and the transcript synced to playback.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = Calmline.el;
  const callId = decodeURIComponent(location.pathname.split("/").pop());
  const KIND = { cue: "cue", "step.done": "step", warning: "warning", alert: "alert" };
  let duration = 1;
  let lines = [];

  function label(ev) {
    if (ev.type === "cue") return `${Calmline.MOVES[ev.move] || ev.move}${ev.hold ? " (held)" : ""}: ${ev.say}`;
    if (ev.type === "step.done") return `${Calmline.MOVES[ev.move] || ev.move}: “${ev.evidence}”`;
    if (ev.type === "warning") return `${Calmline.WARNINGS[ev.kind] || ev.kind}: “${ev.quote}” ${ev.advice}`;
    if (ev.type === "alert") return `${ev.kind}: ${ev.detail}`;
    return "";
  }

  function seek(t) {
    const audio = $("audio");
    audio.currentTime = Math.max(0, Math.min(t, duration));
    sync();
  }

  function sizeCanvas(canvas) {
    canvas.width = canvas.clientWidth * devicePixelRatio;
    canvas.height = 60 * devicePixelRatio;
    return canvas.getContext("2d");
  }

  function drawWave(canvas, samples, color) {
    const ctx = sizeCanvas(canvas);
    const w = canvas.width, h = canvas.height, per = Math.max(1, Math.floor(samples.length / w));
    ctx.fillStyle = color;
    for (let x = 0; x < w; x++) {
      let lo = 0, hi = 0;
      for (let i = x * per; i < (x + 1) * per && i < samples.length; i++) { lo = Math.min(lo, samples[i]); hi = Math.max(hi, samples[i]); }
      ctx.fillRect(x, h / 2 - hi * h / 2, 1, Math.max(1, (hi - lo) * h / 2));
    }
  }

  function drawHeat(points) {
    const canvas = $("heat"), ctx = sizeCanvas(canvas), w = canvas.width, h = canvas.height;
    ctx.strokeStyle = "#e4e7ec";
    for (const y of [0.33, 0.66]) { ctx.beginPath(); ctx.moveTo(0, h - y * h); ctx.lineTo(w, h - y * h); ctx.stroke(); }
    if (!points.length) return;
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.strokeStyle = "#d92d20";
    ctx.beginPath();
    ctx.moveTo(0, h - points[0].heat * h);
    for (const p of points) ctx.lineTo(p.t / duration * w, h - p.heat * h);
    ctx.lineTo(w, h - points[points.length - 1].heat * h);
    ctx.stroke();
  }

  function sync() {
    const t = $("audio").currentTime;
    $("clock").textContent = `${Calmline.clock(t)} / ${Calmline.clock(duration)}`;
    $("playhead").style.left = `${(t / duration) * 100}%`;
    for (const { li, start, end } of lines) {
      const on = t >= start && t < end + 0.3;
      if (on && !li.classList.contains("playing")) li.scrollIntoView({ block: "nearest" });
      li.classList.toggle("playing", on);
    }
  }

  function applyFilters() {
    const shown = new Set([...document.querySelectorAll("#filters input:checked")].map((i) => i.value));
    for (const node of document.querySelectorAll("[data-kind]")) node.hidden = !shown.has(node.dataset.kind);
  }

  async function load(token) {
    const [call, events] = await Promise.all([
      Calmline.api(`/v1/calls/${encodeURIComponent(callId)}`, token),
      Calmline.api(`/v1/calls/${encodeURIComponent(callId)}/events`, token),
    ]);
    duration = Math.max(1, call.audio_seconds || 1);
    $("title").textContent = `Call ${callId} · agent ${call.agent_id} · ${new Date(call.started_at * 1000).toLocaleString()}`;
    const s = call.summary || {};
    $("summary").replaceChildren(
      el("div", {}, el("h2", {}, "Length"), Calmline.clock(duration)),
      el("div", {}, el("h2", {}, "Status"), call.status),
      el("div", {}, el("h2", {}, "Peak heat"), s.peak_heat == null ? "—" : `${Math.round(s.peak_heat * 100)}%`),
      el("div", {}, el("h2", {}, "Final heat"), s.final_heat == null ? "—" : `${Math.round(s.final_heat * 100)}%`),
      el("div", {}, el("h2", {}, "Moves done"), (s.steps_done || []).map((x) => Calmline.MOVES[x.move] || x.move).join(", ") || "—"),
      el("div", {}, el("h2", {}, "Warnings"), String((s.warnings || []).length)),
      el("div", {}, el("h2", {}, "Follow-up"), s.follow_up ? `${s.follow_up.item} (due ${s.follow_up.due})` : "—"));

    lines = events.filter((e) => e.type === "transcript.final").map((e) => {
      const li = el("li", { class: `${e.speaker} final`, tabindex: "0", "data-start": e.start },
        el("span", { class: "who" }, e.speaker === "caller" ? "Caller" : "Agent"), el("span", { class: "text" }, e.text));
      li.onclick = () => seek(e.start);
      li.onkeydown = (k) => { if (k.key === "Enter") seek(e.start); };
      return { li, start: e.start, end: e.end };
    });
    $("transcript").replaceChildren(...lines.map((l) => l.li));

    const notes = events.filter((e) => KIND[e.type]);
    $("annotations").replaceChildren(...notes.map((e) => {
      const li = el("li", { "data-kind": KIND[e.type], tabindex: "0" }, el("span", { class: "t muted" }, Calmline.clock(e.t) + " "),
        el("span", { class: `kind ${KIND[e.type]}` }, KIND[e.type]), label(e));
      li.onclick = () => seek(e.t);
      return li;
    }));
    $("markers").replaceChildren(...notes.map((e) => el("button", {
      class: `marker ${KIND[e.type]}`, "data-kind": KIND[e.type], style: `left:${(e.t / duration) * 100}%`,
      title: `${Calmline.clock(e.t)} ${label(e)}`, "aria-label": `${KIND[e.type]} at ${Calmline.clock(e.t)}`,
      onclick: (ev) => { ev.stopPropagation(); seek(e.t); } })));
    const heat = events.filter((e) => e.type === "sentiment" && e.speaker === "caller").map((e) => ({ t: e.t, heat: e.heat }));
    drawHeat(heat);
    applyFilters();

    // Waveforms from the recording itself (stereo: caller left, agent right).
    const audio = $("audio");
    audio.src = `/v1/calls/${encodeURIComponent(callId)}/audio?token=${encodeURIComponent(token)}`;
    try {
      const bytes = await (await fetch(`/v1/calls/${encodeURIComponent(callId)}/audio`, { headers: { Authorization: "Bearer " + token } })).arrayBuffer();
      const decoded = await new AudioContext().decodeAudioData(bytes);
      drawWave($("wave-caller"), decoded.getChannelData(0), "#b42318");
      drawWave($("wave-agent"), decoded.getChannelData(Math.min(1, decoded.numberOfChannels - 1)), "#1849a9");
      document.body.dataset.waveforms = "drawn";
    } catch (e) { document.body.dataset.waveforms = "failed"; }
    addEventListener("resize", () => drawHeat(heat));
  }

  $("timeline").onclick = (e) => {
    const box = $("timeline").getBoundingClientRect();
    seek(((e.clientX - box.left) / box.width) * duration);
  };
  $("audio").ontimeupdate = sync;
  $("audio").onseeked = sync;
  for (const box of document.querySelectorAll("#filters input")) box.onchange = applyFilters;

  Calmline.signIn(["supervisor"], (me, token) => {
    $("replay").hidden = false;
    load(token).catch((e) => { $("title").textContent = e.message; });
  });
})();
