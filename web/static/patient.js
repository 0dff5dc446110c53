// /patients/<id>: the suggestion, the pain trend, today's count, the sessions
// table, three progress charts and the profile/prescription form.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const T = window.Therapy;
  const pid = T.$('patient-head').dataset.patientId;
  const base = '/api/patients/' + encodeURIComponent(pid);
  const form = T.$('patient-form');
  const errors = T.$('patient-errors');
  let dirty = false;
  let sessionCount = 0;
  // The profile's version the form was filled from: an update sends it, and the controller refuses it
  // (conflict) when the clinic record changed the profile since, rather than overwrite that change unseen.
  let formVersion = null;

  // ---- the program ------------------------------------------------------------------------

  function renderProgram(reply) {
    T.$('patient-name').textContent = reply.patient.display_name;
    T.$('suggestion').textContent = T.suggestionText(reply.suggestion);
    T.$('today').textContent = T.todayText(reply.today);
    const warn = T.$('pain-warning');
    const worsening = Boolean(reply.pain && reply.pain.worsening);
    warn.hidden = !worsening;
    if (!worsening) warn.textContent = '';
    else if (reply.pain.message) {
      warn.textContent = _('pain worsening: review the program — {message}', { message: reply.pain.message });
    } else warn.textContent = _('pain worsening: review the program');
  }

  // ---- sessions table ---------------------------------------------------------------------

  // A session of this treadmill has its session_id and its own page; one the clinic record brought from another
  // treadmill has session_id null and its treadmill_id (its timeline stays on that treadmill): no link.
  const isOwn = (s) => s.session_id !== null && s.session_id !== undefined;

  function sessionRow(s, withTreadmill) {
    const tr = document.createElement('tr');
    if (isOwn(s)) tr.dataset.sessionId = s.session_id;
    if (s.treadmill_id) tr.dataset.treadmillId = s.treadmill_id;
    tr.className = 'status-' + String(s.status).replace(/[^a-z]/g, '') + (isOwn(s) ? '' : ' other-treadmill');
    const details = document.createElement('td');
    if (isOwn(s)) {
      const href = '/sessions/' + encodeURIComponent(s.session_id);
      details.appendChild(T.link(href, _('session {id}', { id: s.session_id })));
    } else {
      details.append(T.el('span', _('on treadmill {treadmill}', { treadmill: s.treadmill_id || '--' }), 'muted'));
    }
    const painCell = document.createElement('td');
    painCell.appendChild(T.pain(s.pain_before, s.pain_after, s.pain_flag));
    const treadmill = T.el('td', s.treadmill_id || '--', 'treadmill-id');
    treadmill.hidden = !withTreadmill;
    tr.append(
      T.el('td', T.dateTime(s.started_wall)), treadmill, T.el('td', T.word('status', s.status)),
      T.el('td', T.minutes(s.planned_min)),
      T.el('td', T.duration(s.duration_s)), T.el('td', T.num(s.distance_m, 0, 'm')),
      T.el('td', T.speed(s.mean_kmh) + ' / ' + T.speed(s.max_kmh)), T.el('td', s.warnings, s.warnings ? 'warn' : ''),
      T.el('td', s.trips, s.trips ? 'trip' : ''), T.el('td', T.num(s.closest_mm, 0, 'mm')), painCell, details);
    return tr;
  }

  function renderSessions(sessions) {
    // The treadmill column only where sessions name their treadmill (a treadmill of a clinic record).
    const withTreadmill = sessions.some((s) => Boolean(s.treadmill_id));
    T.$('sessions-treadmill-head').hidden = !withTreadmill;
    T.$('sessions-table').tBodies[0].replaceChildren(...sessions.map((s) => sessionRow(s, withTreadmill)));
    T.$('sessions-empty').hidden = sessions.length > 0;
  }

  // ---- charts -----------------------------------------------------------------------------

  // One x per session in the order they started (two on one day are apart), dated under the first of a day.
  function renderCharts(sessions) {
    const when = (s) => (isOwn(s) ? _('{date} (session {id})', { date: T.dateTime(s.started_wall), id: s.session_id })
      : _('{date} (on treadmill {treadmill})', { date: T.dateTime(s.started_wall), treadmill: s.treadmill_id }));
    // Each session its own x: another treadmill's has no session_id, so its treadmill and start tell it apart.
    const at = (s) => ({ x: s.started_wall,
      key: isOwn(s) ? 'session ' + s.session_id : 'treadmill ' + s.treadmill_id + ' ' + s.started_wall });
    const painAfter = (s) => (s.pain_after === null ? '--' : s.pain_after);
    window.Charts.dated(T.$('chart-duration'), [
      { label: _('planned'), cls: 'planned', points: sessions.map((s) => ({ ...at(s), y: s.planned_min,
        title: _('{when}: planned {minutes}', { when: when(s), minutes: T.minutes(s.planned_min) }) })) },
      { label: _('walked'), cls: 'walked', points: sessions.map((s) => ({ ...at(s), y: s.duration_s / 60,
        title: _('{when}: walked {time}', { when: when(s), time: T.duration(s.duration_s) }) })) },
    ], { yLabel: _('min'), yFloor: 5 });
    window.Charts.dated(T.$('chart-pain'), [
      { label: _('before'), cls: 'before', points: sessions.map((s) => ({ ...at(s), y: s.pain_before,
        title: _('{when}: pain before {pain}', { when: when(s), pain: s.pain_before }) })) },
      { label: _('after'), cls: 'after', points: sessions.map((s) => ({ ...at(s), y: s.pain_after,
        flag: s.pain_flag, title: s.pain_flag
          ? _('{when}: pain after {pain} (worse than before)', { when: when(s), pain: painAfter(s) })
          : _('{when}: pain after {pain}', { when: when(s), pain: painAfter(s) }) })) },
    ], { yLabel: _('pain'), yMax: 10 });
    window.Charts.dated(T.$('chart-closest'), [
      { label: _('closest'), cls: 'closest', points: sessions.map((s) => ({ ...at(s), y: s.closest_mm,
        flag: s.trips > 0, title: s.trips
          ? _('{when}: closest {gap}, trips: {trips}', { when: when(s), gap: T.num(s.closest_mm, 0, 'mm'), trips: s.trips })
          : _('{when}: closest {gap}', { when: when(s), gap: T.num(s.closest_mm, 0, 'mm') }) })) },
    ], { yLabel: 'mm', yFloor: 500, emptyText: _('no closest approach recorded yet') });
  }

  // ---- loading ----------------------------------------------------------------------------

  async function load() {
    const r = await T.api('GET', base);
    if (!r.ok) {
      if (r.status === 404) T.pageMessage(_('No patient {id}: {reason}', { id: pid, reason: T.explain(r) }));
      else if (r.status !== 401) T.pageMessage(_('Cannot load patient {id}: {reason}', { id: pid, reason: T.explain(r) }));
      return;
    }
    const sessions = r.body.sessions || [];
    sessionCount = sessions.length;
    renderProgram(r.body);
    renderSessions(sessions);
    renderCharts(sessions);
    if (!dirty) {
      T.fillForm(form, r.body.patient);
      formVersion = Number.isInteger(r.body.patient.version) ? r.body.patient.version : null;
    }
  }

  async function loadRanges() {
    const r = await T.api('GET', '/api/patients');
    if (r.ok) T.applyRanges(form, r.body.fields);
  }

  // ---- editing ----------------------------------------------------------------------------

  form.addEventListener('input', () => { dirty = true; });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = T.readForm(form);
    if (formVersion !== null) body.version = formVersion;
    const r = await T.api('PUT', base, body);
    if (r.ok) {
      T.showErrors(form, errors, [], null);
      T.say('patient-message', _('profile saved'), false);
      dirty = false;
      load();
    } else {
      T.say('patient-message', '');
      T.showErrors(form, errors, r.body.errors, T.explain(r));
    }
  });

  T.$('delete-patient').addEventListener('click', async () => {
    const question = _('Delete patient {id} and all {count} of their sessions, with the timelines? This cannot be undone.',
      { id: pid, count: sessionCount });
    if (!window.confirm(question)) return;
    const r = await T.api('DELETE', base);
    if (r.ok) window.location.assign('/patients');
    else T.say('patient-message', T.explain(r), true);
  });

  loadRanges();
  load();
})();
