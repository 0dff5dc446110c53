// The dashboard's "Session" panel: choose a patient (confirming looser limits), start a therapy
// session at a speed the therapist sees, and the summary and pain after the end. The timer, Pause,
// Resume and End are in the header (header.js). Status comes from the header's 'dashboard:status'
// events; requests go through its api() so the CSRF token and its refresh are shared.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const $ = (id) => document.getElementById(id);
  const D = window.Dashboard;
  const word = window.Header.word;
  const select = $('patient-select');
  let loggedIn = !$('therapist').hidden;
  let status = null;
  let runningSessionId = null;
  let endedSessionId = null;
  // While a looser prescription waits for the therapist's answer: { pid, start: the session body or null }.
  let pending = null;
  // What the therapist typed for the patient shown: a suggestion that arrives later never overwrites it.
  let shownFor = null;
  const typed = new Set();
  for (const id of ['session-planned', 'session-speed']) $(id).addEventListener('input', () => typed.add(id));

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

  // ---- buttons: from every status ----------------------------------------------------------------

  function renderPatientLine(s) {
    const session = s.session || null;
    $('session-patient').textContent = session ? _('patient {id} walking', { id: session.patient_id })
      : (s.selected_patient ? _('chosen: {id}', { id: s.selected_patient }) : _('no patient chosen'));
  }

  function renderButtons() {
    const session = status ? status.session : null;
    const offline = !status;
    // A session starts from READY only, for a chosen patient, once any looser limits are confirmed.
    $('session-start').disabled = offline || Boolean(session) || !select.value || status.state !== 'READY' ||
      pending !== null;
    select.disabled = offline || Boolean(session);
    $('session-speed').disabled = offline || Boolean(session);
    $('session-confirm-yes').disabled = offline || Boolean(session);
  }

  function onStatus(s) {
    status = s;
    renderPatientLine(s);
    const id = s.session ? s.session.session_id : null;
    if (runningSessionId !== null && id !== runningSessionId) showEnded(runningSessionId, null);
    runningSessionId = id;
    // The choice on screen waits for the therapist while a looser prescription asks to be confirmed.
    if (pending === null && s.selected_patient && document.activeElement !== select &&
        select.value !== s.selected_patient &&
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
      D.say('session-message', _('patients: {reason}', { reason: D.explain(r) }), true);
      return;
    }
    const keep = select.value || (status && status.selected_patient) || '';
    select.replaceChildren(new Option(_('choose a patient…'), ''));
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
    if (pid !== shownFor) {
      shownFor = pid;
      typed.clear();
    }
    const s = r.body.suggestion;
    const today = r.body.today;
    const parts = [];
    if (s) {
      parts.push(s.reason ? _('suggested: {minutes} min — {reason}', { minutes: s.duration_min, reason: s.reason })
        : _('suggested: {minutes} min', { minutes: s.duration_min }));
    }
    if (today) parts.push(todayText(today.done, today.per_day));
    $('session-suggestion').textContent = parts.join(' · ');
    if (s && !typed.has('session-planned') && document.activeElement !== $('session-planned')) {
      $('session-planned').value = s.duration_min;
    }
    // The start speed is explicit: the patient's last session's speed, else the slowest; the therapist may change it.
    const speed = $('session-speed');
    if (r.body.start_speed_kmh !== undefined && !typed.has('session-speed') && document.activeElement !== speed) {
      speed.value = r.body.start_speed_kmh;
      $('session-speed-why').textContent = r.body.start_speed_reason || '';
    }
    if (r.body.patient && r.body.patient.speed_cap_kmh !== undefined) speed.max = r.body.patient.speed_cap_kmh;
    const warn = $('session-pain-warning');
    const worsening = Boolean(r.body.pain && r.body.pain.worsening);
    warn.hidden = !worsening;
    if (!worsening) warn.textContent = '';
    else if (r.body.pain.message) {
      warn.textContent = _('pain worsening: review the program — {message}', { message: r.body.pain.message });
    } else warn.textContent = _('pain worsening: review the program');
  }

  function todayText(done, perDay) {
    // More than planned reads as such, never "3 of 2".
    if (done > perDay) return _('sessions today: {done} ({planned} planned)', { done, planned: perDay });
    return _('sessions today: {done} of {planned}', { done, planned: perDay });
  }

  // Choosing a patient whose prescription is looser than the machine's present limits asks first.
  function askToConfirm(pid, body, start) {
    pending = { pid, start: start || null };
    $('session-confirm-text').textContent = _("Patient {id}'s prescription loosens the machine's limits:", { id: pid });
    const list = $('session-confirm-list');
    list.replaceChildren();
    for (const item of body.loosened || []) {
      const li = document.createElement('li');
      li.textContent = (item.label || item.field) + ': ' + item.old + ' → ' + item.new + (item.unit ? ' ' + item.unit : '');
      list.appendChild(li);
    }
    if (!list.children.length) {
      const li = document.createElement('li');
      li.textContent = body.message || _('looser limits');
      list.appendChild(li);
    }
    $('session-confirm').hidden = false;
    renderButtons();
    $('session-confirm-yes').focus();
  }

  function closeConfirm() {
    pending = null;
    $('session-confirm').hidden = true;
  }

  async function choose(pid, confirm) {
    pending = pending || { pid, start: null };
    const r = await D.api('POST', '/api/patients/' + encodeURIComponent(pid) + '/select',
      confirm ? { confirm: true } : undefined);
    if (!r.ok && r.status === 409 && r.body.code === 'confirm') {
      askToConfirm(pid, r.body);
      return;
    }
    closeConfirm();
    D.say('session-message', r.ok ? r.body.message : errorText(r), !r.ok);
    loadPatient(pid);
    D.fetchStatus();
    D.refreshEvents();
    renderButtons();
  }

  select.addEventListener('change', () => {
    closeConfirm();
    renderButtons();
    if (select.value) choose(select.value, false);
  });
  $('session-confirm-yes').addEventListener('click', () => {
    if (pending === null) return;
    // Confirmed: the patient asked about, and the session if that is what asked.
    if (pending.start) startSession({ ...pending.start, confirm: true });
    else choose(pending.pid, true);
  });
  $('session-confirm-no').addEventListener('click', () => {
    closeConfirm();
    select.value = (status && status.selected_patient) || '';
    D.say('session-message', _('present limits kept'), false);
    renderButtons();
  });

  // ---- start, pause, resume, end --------------------------------------------------------------

  async function startSession(body) {
    const r = await D.api('POST', '/api/sessions', body);
    if (!r.ok && r.status === 409 && r.body.code === 'confirm') {
      askToConfirm(body.patient_id, r.body, body);
      return;
    }
    closeConfirm();
    D.say('session-message', r.ok ? _('session {id} started', { id: r.body.session.session_id }) : errorText(r), !r.ok);
    // The session is followed from the statuses only: one pushed just before the start may still arrive,
    // and must not read as "the session has ended".
    if (r.ok) $('session-after').hidden = true;
    D.fetchStatus();
    D.refreshEvents();
    renderButtons();
  }

  $('session-start').addEventListener('click', () => {
    const body = { patient_id: select.value };
    const planned = numberOrRaw($('session-planned').value);
    const painBefore = numberOrRaw($('session-pain-before').value);
    const speed = numberOrRaw($('session-speed').value);
    if (planned !== undefined) body.planned_min = planned;
    if (painBefore !== undefined) body.pain_before = painBefore;
    if (speed !== undefined) body.speed_kmh = speed;
    startSession(body);
  });

  // ---- after the end: summary and pain after --------------------------------------------------

  // The end reason and the pain after are there or not: one whole sentence for each case.
  function summaryText(s) {
    const values = {
      id: s.session_id, status: word('status', s.status), reason: s.end_reason, walked: clock(s.duration_s),
      planned: s.planned_min, warnings: s.warnings, trips: s.trips, before: s.pain_before, after: s.pain_after,
      distance: s.distance_m === null || s.distance_m === undefined ? '--' : Math.round(s.distance_m) + ' m',
      closest: s.closest_mm === null || s.closest_mm === undefined ? '--' : Math.round(s.closest_mm) + ' mm',
    };
    const after = s.pain_after !== null && s.pain_after !== undefined;
    let text;
    if (s.end_reason && after) {
      text = _('Session {id} {status} ({reason}): walked {walked} of {planned} min, {distance}, warnings: {warnings}, trips: {trips}, closest {closest}, pain before {before}, after {after}.', values);
    } else if (s.end_reason) {
      text = _('Session {id} {status} ({reason}): walked {walked} of {planned} min, {distance}, warnings: {warnings}, trips: {trips}, closest {closest}, pain before {before}.', values);
    } else if (after) {
      text = _('Session {id} {status}: walked {walked} of {planned} min, {distance}, warnings: {warnings}, trips: {trips}, closest {closest}, pain before {before}, after {after}.', values);
    } else {
      text = _('Session {id} {status}: walked {walked} of {planned} min, {distance}, warnings: {warnings}, trips: {trips}, closest {closest}, pain before {before}.', values);
    }
    return text + ' ';
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
    link.textContent = _('open session {id}', { id: s.session_id });
    out.replaceChildren(summaryText(s), link);
    const recorded = s.pain_after !== null && s.pain_after !== undefined;
    if (recorded || fresh) $('session-pain-after').value = recorded ? s.pain_after : '';
    $('session-pain-after').disabled = recorded;
    $('session-pain-save').disabled = recorded;
    D.say('session-pain-message', recorded ? _('pain after recorded') : _('how is the pain now (0-10)?'), false);
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
      D.say('session-pain-message', r.body.session.pain_flag ? _('pain after saved: worse than before')
        : _('pain after saved'), Boolean(r.body.session.pain_flag));
    } else {
      D.say('session-pain-message', errorText(r), true);
    }
  });

  // ---- login ------------------------------------------------------------------------------------

  document.addEventListener('dashboard:status', (ev) => onStatus(ev.detail));
  document.addEventListener('dashboard:stale', () => {
    status = null;
    renderButtons();
  });
  document.addEventListener('dashboard:login', (ev) => {
    loggedIn = ev.detail.loggedIn;
    $('session-controls').hidden = !loggedIn;
    if (loggedIn) loadPatients();
    else $('session-after').hidden = true;
  });

  renderButtons();
  loadPatients();
})();
