// The dashboard's "Session" panel: choose a patient, start / pause / resume /
// end a therapy session, the timer (for everyone), and the pain after the end.
// Status comes from app.js ('dashboard:status' events); requests go through its
// api() so the CSRF token and its refresh are shared.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const D = window.Dashboard;
  const select = $('patient-select');
  let loggedIn = !$('therapist').hidden;
  let status = null;
  let runningSessionId = null;
  let endedSessionId = null;

  function clock(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '--:--';
    const total = Math.max(0, Math.floor(seconds));
    return Math.floor(total / 60) + ':' + String(total % 60).padStart(2, '0');
  }

  function numberOrRaw(raw) {
    // Unparseable text goes as it is, so the 400 names the field; empty is left out ("required").
    const text = raw.trim();
    if (text === '') return undefined;
    return isFinite(Number(text)) ? Number(text) : text;
  }

  function errorText(r) {
    const errors = (r.body && r.body.errors) || [];
    return errors.length ? errors.map((e) => e.message).join('; ') : D.explain(r);
  }

  // ---- timer and buttons: from every status ---------------------------------------------------

  function renderTimer(s) {
    const session = s.session || null;
    $('session-timer').textContent = session ? clock(session.elapsed_s) + ' / ' + clock(session.planned_s)
      : '--:-- / --:--';
    const phase = $('session-phase');
    let words = 'no session';
    if (session) {
      words = session.phase;
      if (session.phase === 'paused' && session.paused_reason) words += ': ' + session.paused_reason;
      if (session.end_warning) words += ' (ending in ' + clock(session.remaining_s) + ')';
    }
    phase.textContent = words;
    phase.className = 'phase phase-' + (session ? String(session.phase).replace(/[^a-z]/g, '') : 'none') +
      (session && session.end_warning ? ' end-warning' : '');
    const who = session ? 'patient ' + session.patient_id
      : (s.selected_patient ? 'chosen: ' + s.selected_patient : '');
    $('session-patient').textContent = who;
  }

  function renderButtons() {
    const session = status ? status.session : null;
    const offline = !status;
    $('session-start').disabled = offline || Boolean(session) || !select.value;
    $('session-pause').disabled = offline || !session || session.phase !== 'walking';
    $('session-resume').disabled = offline || !session || session.phase !== 'paused';
    $('session-end').disabled = offline || !session;
    select.disabled = Boolean(session);
  }

  function onStatus(s) {
    status = s;
    renderTimer(s);
    const id = s.session ? s.session.session_id : null;
    if (runningSessionId !== null && id !== runningSessionId) showEnded(runningSessionId, null);
    runningSessionId = id;
    if (s.selected_patient && document.activeElement !== select && select.value !== s.selected_patient &&
        [...select.options].some((o) => o.value === s.selected_patient)) {
      select.value = s.selected_patient;
      loadPatient(s.selected_patient);
    }
    renderButtons();
  }

  // ---- choosing a patient -----------------------------------------------------------------------

  async function loadPatients() {
    if (!loggedIn) return;
    const r = await D.api('GET', '/api/patients');
    if (!r.ok) {
      D.say('session-message', 'patients: ' + D.explain(r), true);
      return;
    }
    const keep = select.value || (status && status.selected_patient) || '';
    select.replaceChildren(new Option('choose a patient…', ''));
    for (const p of r.body.patients || []) {
      select.appendChild(new Option(p.patient_id + ' · ' + p.display_name, p.patient_id));
    }
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
    if (select.value) loadPatient(select.value);
    renderButtons();
  }

  async function loadPatient(pid) {
    const r = await D.api('GET', '/api/patients/' + encodeURIComponent(pid));
    if (!r.ok) return;
    const s = r.body.suggestion;
    const today = r.body.today;
    const parts = [];
    if (s) parts.push('suggested: ' + s.duration_min + ' min' + (s.reason ? ' — ' + s.reason : ''));
    if (today) parts.push('today: ' + today.done + ' of ' + today.per_day + ' sessions');
    $('session-suggestion').textContent = parts.join(' · ');
    if (s && document.activeElement !== $('session-planned')) $('session-planned').value = s.duration_min;
    const warn = $('session-pain-warning');
    const worsening = Boolean(r.body.pain && r.body.pain.worsening);
    warn.hidden = !worsening;
    warn.textContent = worsening
      ? 'pain worsening: review the program' + (r.body.pain.message ? ' — ' + r.body.pain.message : '') : '';
  }

  select.addEventListener('change', async () => {
    renderButtons();
    const pid = select.value;
    if (!pid) return;
    const r = await D.api('POST', '/api/patients/' + encodeURIComponent(pid) + '/select');
    D.say('session-message', r.ok ? r.body.message : errorText(r), !r.ok);
    loadPatient(pid);
    D.fetchStatus();
    D.refreshEvents();
  });

  // ---- start, pause, resume, end --------------------------------------------------------------

  $('session-start').addEventListener('click', async () => {
    const body = { patient_id: select.value };
    const planned = numberOrRaw($('session-planned').value);
    const painBefore = numberOrRaw($('session-pain-before').value);
    const speed = numberOrRaw($('start-speed').value);
    if (planned !== undefined) body.planned_min = planned;
    if (painBefore !== undefined) body.pain_before = painBefore;
    if (speed !== undefined) body.speed_kmh = speed;
    const r = await D.api('POST', '/api/sessions', body);
    D.say('session-message', r.ok ? 'session ' + r.body.session.session_id + ' started' : errorText(r), !r.ok);
    // The session is followed from the statuses only: one pushed just before the start may still arrive,
    // and must not read as "the session has ended".
    if (r.ok) $('session-after').hidden = true;
    D.fetchStatus();
    D.refreshEvents();
  });

  async function control(action) {
    const r = await D.api('POST', '/api/sessions/current/' + action);
    // An ended session shows once the status no longer carries it (at once on a standing belt; after
    // the ramp-down, phase "finishing", on a moving one): onStatus then fetches its summary.
    D.say('session-message', r.ok ? (r.body.message || action) : errorText(r), !r.ok);
    D.fetchStatus();
    D.refreshEvents();
  }

  $('session-pause').addEventListener('click', () => control('pause'));
  $('session-resume').addEventListener('click', () => control('resume'));
  $('session-end').addEventListener('click', () => control('end'));

  // ---- after the end: summary and pain after --------------------------------------------------

  function summaryText(s) {
    const km = s.distance_m === null || s.distance_m === undefined ? '--' : Math.round(s.distance_m) + ' m';
    const closest = s.closest_mm === null || s.closest_mm === undefined ? '--' : Math.round(s.closest_mm) + ' mm';
    return 'Session ' + s.session_id + ' ' + s.status + (s.end_reason ? ' (' + s.end_reason + ')' : '') +
      ': walked ' + clock(s.duration_s) + ' of ' + s.planned_min + ' min, ' + km + ', ' + s.warnings +
      ' warnings, ' + s.trips + ' trips, closest ' + closest + ', pain before ' + s.pain_before +
      (s.pain_after === null || s.pain_after === undefined ? '' : ', after ' + s.pain_after) + '. ';
  }

  // ``summary`` is a full session summary (GET /api/sessions/<id>, or the pain reply); null fetches it,
  // asking again for a little while if the history does not say "ended" yet.
  async function showEnded(sid, summary, triesLeft = 5) {
    if (!loggedIn) return;
    let s = summary;
    if (!s) {
      const r = await D.api('GET', '/api/sessions/' + encodeURIComponent(sid));
      if (!r.ok) return;
      s = r.body.session;
      if (s.status === 'active') {
        if (triesLeft > 0) setTimeout(() => showEnded(sid, null, triesLeft - 1), 1000);
        return;
      }
    }
    const fresh = endedSessionId !== s.session_id;
    endedSessionId = s.session_id;
    const out = $('session-summary');
    const link = document.createElement('a');
    link.href = '/sessions/' + encodeURIComponent(s.session_id);
    link.textContent = 'open session ' + s.session_id;
    out.replaceChildren(summaryText(s), link);
    const recorded = s.pain_after !== null && s.pain_after !== undefined;
    if (recorded || fresh) $('session-pain-after').value = recorded ? s.pain_after : '';
    $('session-pain-after').disabled = recorded;
    $('session-pain-save').disabled = recorded;
    D.say('session-pain-message', recorded ? 'pain after recorded' : 'how is the pain now (0-10)?', false);
    $('session-after').hidden = false;
    if (select.value) loadPatient(select.value);
  }

  $('session-pain-save').addEventListener('click', async () => {
    if (endedSessionId === null) return;
    const body = {};
    const value = numberOrRaw($('session-pain-after').value);
    if (value !== undefined) body.pain_after = value;
    const r = await D.api('PUT', '/api/sessions/' + encodeURIComponent(endedSessionId) + '/pain', body);
    if (r.ok) {
      showEnded(endedSessionId, r.body.session);
      D.say('session-pain-message', 'pain after saved' + (r.body.session.pain_flag ? ': worse than before' : ''),
        Boolean(r.body.session.pain_flag));
    } else {
      D.say('session-pain-message', errorText(r), true);
    }
  });

  // ---- login ------------------------------------------------------------------------------------

  document.addEventListener('dashboard:status', (ev) => onStatus(ev.detail));
  document.addEventListener('dashboard:login', (ev) => {
    loggedIn = ev.detail.loggedIn;
    $('session-controls').hidden = !loggedIn;
    if (loggedIn) loadPatients();
    else $('session-after').hidden = true;
  });

  renderButtons();
  loadPatients();
})();
