// /sessions/<id>: the summary, the timeline of gap and belt speed, the warn and trip events.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const T = window.Therapy;
  const KMH_PER_MPH = 1.609344;
  const sid = T.$('session-head').dataset.sessionId;
  const base = '/api/sessions/' + encodeURIComponent(sid);

  function fact(list, term, value) {
    const dd = document.createElement('dd');
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value === null || value === undefined || value === '' ? '--' : String(value);
    list.append(T.el('dt', term), dd);
  }

  function renderSummary(s) {
    const patientLink = T.$('session-patient-link');
    patientLink.textContent = s.patient_id;
    patientLink.href = '/patients/' + encodeURIComponent(s.patient_id);
    const list = T.$('session-info');
    list.replaceChildren();
    fact(list, _('Status'), T.word('status', s.status));
    fact(list, _('Started'), T.dateTime(s.started_wall));
    fact(list, _('Ended'), s.ended_wall === null ? _('still running') : T.dateTime(s.ended_wall));
    fact(list, _('End reason'), s.end_reason);
    fact(list, _('Mode'), s.mode ? T.word('mode', s.mode) : s.mode);
    fact(list, _('Planned'), T.minutes(s.planned_min));
    fact(list, _('Walked'), T.duration(s.duration_s));
    fact(list, _('Distance'), T.num(s.distance_m, 0, 'm'));
    fact(list, _('Mean / max speed'), T.speed(s.mean_kmh) + ' / ' + T.speed(s.max_kmh));
    fact(list, _('Warnings'), s.warnings);
    fact(list, _('Trips'), s.trips);
    fact(list, _('Closest approach'), T.num(s.closest_mm, 0, 'mm'));
    fact(list, _('Pain before → after'), T.pain(s.pain_before, s.pain_after, s.pain_flag));
  }

  function renderEvents(events) {
    const list = T.$('session-events');
    list.replaceChildren();
    for (const e of events) {
      const li = T.el('li', null, 'event kind-' + String(e.kind).replace(/[^a-z_]/g, ''));
      li.append(T.el('time', T.timeOfDay(e.wall_time)), ' ', T.el('span', T.word('kind', e.kind), 'kind'), ' ',
        T.el('span', e.message + (e.actor ? ' (' + e.actor + ')' : '')));
      list.appendChild(li);
    }
    T.$('session-events-empty').hidden = events.length > 0;
  }

  // Every page of the timeline, 5000 rows at a time, as {t, gap, speed, stop, warn}: speed in km/h,
  // stop and warn the distances in force at the sample (null when the controller did not record them).
  async function loadSamples() {
    const samples = [];
    let offset = 0;
    for (;;) {
      const r = await T.api('GET', base + '/samples?offset=' + offset + '&limit=5000');
      if (!r.ok) return { samples, error: T.explain(r) };
      const cols = r.body.columns || [];
      const it = cols.indexOf('t_s');
      const ig = cols.indexOf('gap_mm');
      const iv = cols.indexOf('belt_kmh');
      const is = cols.indexOf('stop_mm');
      const iw = cols.indexOf('warn_mm');
      for (const row of r.body.rows || []) {
        samples.push({ t: row[it], gap: row[ig], speed: row[iv], stop: is < 0 ? null : row[is],
          warn: iw < 0 ? null : row[iw] });
      }
      T.$('timeline-note').textContent = _('loading the timeline… {loaded} of {total}',
        { loaded: samples.length, total: r.body.total });
      if (r.body.next_offset === null || r.body.next_offset === undefined || r.body.next_offset <= offset) break;
      offset = r.body.next_offset;
    }
    return { samples, error: null };
  }

  async function load() {
    const r = await T.api('GET', base);
    if (!r.ok) {
      if (r.status === 404) T.pageMessage(_('No session {id}: {reason}', { id: sid, reason: T.explain(r) }));
      else if (r.status !== 401) T.pageMessage(_('Cannot load session {id}: {reason}', { id: sid, reason: T.explain(r) }));
      T.$('timeline-note').textContent = '';
      return;
    }
    const s = r.body.session;
    renderSummary(s);
    renderEvents(r.body.events || []);
    const { samples, error } = await loadSamples();
    const events = (r.body.events || []).map((e) => ({ t: e.wall_time - s.started_wall, kind: e.kind,
      title: _('{field}: {message}', { field: T.word('kind', e.kind), message: e.message }) }));
    const mph = T.units === 'mph';
    const { shown, bands } = window.Charts.timeline(T.$('timeline'), samples, events,
      { speedLabel: T.units, speedScale: mph ? 1 / KMH_PER_MPH : 1 });
    const notes = [samples.length > shown.length
      ? _('{shown} of {total} samples shown: the closest gap of each stretch', { shown: shown.length, total: samples.length })
      : _('{count} samples', { count: samples.length })];
    if (samples.length > 0 && !bands) notes.push(_('the stop and warn distances were not recorded for this session'));
    if (error) notes.push(_('the rest could not be loaded: {reason}', { reason: error }));
    T.$('timeline-note').textContent = notes.reduce((first, second) => _('{first}; {second}', { first, second }));
  }

  load();
})();
