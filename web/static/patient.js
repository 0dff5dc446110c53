// /patients/<id>: the suggestion, the pain trend, today's count, the sessions
// table, three progress charts and the profile/prescription form.
'use strict';

(function () {
  const T = window.Therapy;
  const pid = T.$('patient-head').dataset.patientId;
  const base = '/api/patients/' + encodeURIComponent(pid);
  const form = T.$('patient-form');
  const errors = T.$('patient-errors');
  let dirty = false;
  let sessionCount = 0;

  // ---- the program ------------------------------------------------------------------------

  function renderProgram(reply) {
    T.$('patient-name').textContent = reply.patient.display_name;
    T.$('suggestion').textContent = T.suggestionText(reply.suggestion);
    T.$('today').textContent = T.todayText(reply.today);
    const warn = T.$('pain-warning');
    const worsening = Boolean(reply.pain && reply.pain.worsening);
    warn.hidden = !worsening;
    warn.textContent = worsening
      ? 'pain worsening: review the program' + (reply.pain.message ? ' — ' + reply.pain.message : '')
      : '';
  }

  // ---- sessions table ---------------------------------------------------------------------

  function sessionRow(s) {
    const tr = document.createElement('tr');
    tr.dataset.sessionId = s.session_id;
    tr.className = 'status-' + String(s.status).replace(/[^a-z]/g, '');
    const details = document.createElement('td');
    details.appendChild(T.link('/sessions/' + encodeURIComponent(s.session_id), 'session ' + s.session_id));
    const painCell = document.createElement('td');
    painCell.appendChild(T.pain(s.pain_before, s.pain_after, s.pain_flag));
    tr.append(
      T.el('td', T.dateTime(s.started_wall)), T.el('td', s.status), T.el('td', T.minutes(s.planned_min)),
      T.el('td', T.duration(s.duration_s)), T.el('td', T.num(s.distance_m, 0, 'm')),
      T.el('td', T.speed(s.mean_kmh) + ' / ' + T.speed(s.max_kmh)), T.el('td', s.warnings, s.warnings ? 'warn' : ''),
      T.el('td', s.trips, s.trips ? 'trip' : ''), T.el('td', T.num(s.closest_mm, 0, 'mm')), painCell, details);
    return tr;
  }

  function renderSessions(sessions) {
    T.$('sessions-table').tBodies[0].replaceChildren(...sessions.map(sessionRow));
    T.$('sessions-empty').hidden = sessions.length > 0;
  }

  // ---- charts -----------------------------------------------------------------------------

  // One x per session in the order they started (two on one day are apart), dated under the first of a day.
  function renderCharts(sessions) {
    const when = (s) => T.dateTime(s.started_wall) + ' (session ' + s.session_id + ')';
    const at = (s) => ({ x: s.started_wall, key: s.session_id });
    window.Charts.dated(T.$('chart-duration'), [
      { label: 'planned', cls: 'planned', points: sessions.map((s) => ({ ...at(s), y: s.planned_min,
        title: when(s) + ': planned ' + T.minutes(s.planned_min) })) },
      { label: 'walked', cls: 'walked', points: sessions.map((s) => ({ ...at(s), y: s.duration_s / 60,
        title: when(s) + ': walked ' + T.duration(s.duration_s) })) },
    ], { yLabel: 'min', yFloor: 5 });
    window.Charts.dated(T.$('chart-pain'), [
      { label: 'before', cls: 'before', points: sessions.map((s) => ({ ...at(s), y: s.pain_before,
        title: when(s) + ': pain before ' + s.pain_before })) },
      { label: 'after', cls: 'after', points: sessions.map((s) => ({ ...at(s), y: s.pain_after,
        flag: s.pain_flag, title: when(s) + ': pain after ' + (s.pain_after === null ? '--' : s.pain_after) +
          (s.pain_flag ? ' (worse than before)' : '') })) },
    ], { yLabel: 'pain', yMax: 10 });
    window.Charts.dated(T.$('chart-closest'), [
      { label: 'closest', cls: 'closest', points: sessions.map((s) => ({ ...at(s), y: s.closest_mm,
        flag: s.trips > 0, title: when(s) + ': closest ' + T.num(s.closest_mm, 0, 'mm') +
          (s.trips ? ', ' + s.trips + ' trip(s)' : '') })) },
    ], { yLabel: 'mm', yFloor: 500, emptyText: 'no closest approach recorded yet' });
  }

  // ---- loading ----------------------------------------------------------------------------

  async function load() {
    const r = await T.api('GET', base);
    if (!r.ok) {
      if (r.status === 404) T.pageMessage('No patient ' + pid + ': ' + T.explain(r));
      else if (r.status !== 401) T.pageMessage('Cannot load patient ' + pid + ': ' + T.explain(r));
      return;
    }
    const sessions = r.body.sessions || [];
    sessionCount = sessions.length;
    renderProgram(r.body);
    renderSessions(sessions);
    renderCharts(sessions);
    if (!dirty) T.fillForm(form, r.body.patient);
  }

  async function loadRanges() {
    const r = await T.api('GET', '/api/patients');
    if (r.ok) T.applyRanges(form, r.body.fields);
  }

  // ---- editing ----------------------------------------------------------------------------

  form.addEventListener('input', () => { dirty = true; });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await T.api('PUT', base, T.readForm(form));
    if (r.ok) {
      T.showErrors(form, errors, [], null);
      T.say('patient-message', 'profile saved', false);
      dirty = false;
      load();
    } else {
      T.say('patient-message', '');
      T.showErrors(form, errors, r.body.errors, T.explain(r));
    }
  });

  T.$('delete-patient').addEventListener('click', async () => {
    const question = 'Delete patient ' + pid + ' and all ' + sessionCount + ' of their sessions, with the ' +
      'timelines? This cannot be undone.';
    if (!window.confirm(question)) return;
    const r = await T.api('DELETE', base);
    if (r.ok) window.location.assign('/patients');
    else T.say('patient-message', T.explain(r), true);
  });

  loadRanges();
  load();
})();
