// /clinic: every treadmill of the clinic, from the clinic record (GET /api/clinic/overview, about once a
// second). For watching only: commands are given on each treadmill's own dashboard.
// Nothing stale is shown: a row whose treadmill has not reported for 3 s (on the server's clock) shows
// "not live" with its values blank, and when the clinic record does not answer for 3 s every value goes
// blank and the table greys. Everything from the record is shown with textContent, never as HTML.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const T = window.Therapy;
  const word = window.Header.word;
  const plain = window.Header.plain;
  // Twice a second: a trip on any treadmill is on the page well within 2 s (one small query each time).
  const POLL_MS = 500;
  // No answer for this long: the record counts as unreachable.
  const UNREACHABLE_AFTER_MS = 3000;
  // One request at most this long: a hung one must not stop the polling.
  const REQUEST_TIMEOUT_MS = 3000;

  const section = T.$('clinic-overview');
  const table = T.$('clinic-table');
  // On the monotonic clock: a wall clock stepped back (a Pi's first NTP sync) cannot hide silence.
  let lastAnswerAt = performance.now();
  let rows = [];
  let reachable = null;

  function clock(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '--:--';
    const total = Math.max(0, Math.floor(seconds));
    return Math.floor(total / 60) + ':' + String(total % 60).padStart(2, '0');
  }

  // The reason codes of a row: a list, or the controller's {code: message}.
  function codes(reasons) {
    if (Array.isArray(reasons)) return reasons.map(String);
    return reasons && typeof reasons === 'object' ? Object.keys(reasons) : [];
  }

  function reasonText(reasons) {
    return codes(reasons).map((code) => plain(code)[0]).join('; ');
  }

  // Only a web address becomes a link: the record is written by every treadmill of the clinic.
  function dashboardLink(url, text) {
    if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) return null;
    const a = T.link(url, text);
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.className = 'clinic-dashboard-link';
    return a;
  }

  function treadmillCell(t) {
    const td = T.el('td', null, 'clinic-treadmill');
    td.append(dashboardLink(t.dashboard_url, t.treadmill_id) || T.el('span', t.treadmill_id));
    if (t.this) td.append(' ', T.el('span', _('this treadmill'), 'clinic-this'));
    return td;
  }

  function stateCell(t, shown) {
    const td = T.el('td', null, 'clinic-state');
    let state;
    if (!shown) state = null;
    else if (t.controller_link === false) state = 'OFFLINE';
    else state = t.warning && t.state === 'RUNNING' ? 'WARNING' : t.state;
    if (state === null) {
      const text = reachable === false ? '--' : _('not live');
      td.append(T.el('span', text, 'state-badge state-offline'));
      if (reachable !== false && Number.isFinite(t.age_s)) {
        td.append(' ', T.el('span', _('last heard {seconds} s ago', { seconds: Math.round(t.age_s) }), 'muted'));
      }
      return td;
    }
    td.dataset.state = state;
    td.append(T.el('span', word('state', state), 'state-badge state-' + String(state).toLowerCase()));
    const why = state === 'STOPPED' ? reasonText(t.reasons) : '';
    if (why) td.append(' ', T.el('span', why, 'clinic-reasons'));
    return td;
  }

  function sessionCell(t, shown) {
    const td = T.el('td', null, 'clinic-session');
    if (!shown || t.session_id === null || t.session_id === undefined) {
      td.textContent = '--';
      return td;
    }
    td.append(T.el('strong', clock(t.session_elapsed_s) + ' / ' + clock(t.session_planned_s), 'clinic-timer'));
    if (t.session_phase) td.append(' ', T.el('span', word('phase', t.session_phase), 'phase'));
    return td;
  }

  // Today's trip by its time of day; an older one with its date.
  function tripTime(wall) {
    const today = new Date().toDateString() === new Date(wall * 1000).toDateString();
    return today ? T.timeOfDay(wall) : T.dateTime(wall);
  }

  function lastTripCell(t, shown) {
    const td = T.el('td', null, 'clinic-last-trip');
    if (!shown) {
      td.textContent = '--';
    } else if (t.last_trip_wall === null || t.last_trip_wall === undefined) {
      td.textContent = _('none');
    } else {
      td.append(T.el('time', tripTime(t.last_trip_wall), 'clinic-trip-time'));
      td.dataset.tripWall = String(t.last_trip_wall);
      const why = reasonText(t.last_trip_reasons);
      if (why) td.append(' ', T.el('span', why, 'clinic-trip-reason'));
    }
    return td;
  }

  function replicationCell(t, shown, serverTime) {
    const td = T.el('td', null, 'clinic-replication');
    if (!shown) {
      td.textContent = '--';
      return td;
    }
    td.dataset.current = t.replication_current ? '1' : '0';
    if (t.replication_current) {
      td.textContent = _('current');
      return td;
    }
    td.classList.add('warn');
    const oldest = Number.isFinite(t.outbox_oldest_wall) && Number.isFinite(serverTime)
      ? Math.max(0, Math.round(serverTime - t.outbox_oldest_wall)) : '--';
    td.textContent = _('{rows} rows behind, oldest {seconds} s', { rows: t.outbox_backlog, seconds: oldest });
    return td;
  }

  function row(t, serverTime) {
    // A row's values show only while its treadmill reports and the record answers.
    const shown = reachable !== false && t.live === true;
    const tr = document.createElement('tr');
    tr.id = 'clinic-row-' + t.treadmill_id;
    tr.className = 'clinic-row';
    tr.dataset.treadmillId = t.treadmill_id;
    tr.dataset.live = shown ? '1' : '0';
    tr.classList.toggle('clinic-this-row', Boolean(t.this));
    tr.classList.toggle('not-live', !shown);
    tr.append(treadmillCell(t), stateCell(t, shown), T.el('td', shown ? (t.patient_id || '--') : '--', 'clinic-patient'),
      sessionCell(t, shown), lastTripCell(t, shown), replicationCell(t, shown, serverTime));
    return tr;
  }

  let serverTime = null;

  function render() {
    const body = table.tBodies[0];
    // Only a row that changed is replaced: a link in focus (or under the pointer) stays where it is.
    rows.map((t) => row(t, serverTime)).forEach((tr, i) => {
      const old = body.rows[i];
      if (!old) body.append(tr);
      else if (!old.isEqualNode(tr)) old.replaceWith(tr);
    });
    while (body.rows.length > rows.length) body.deleteRow(-1);
    T.$('clinic-empty').hidden = reachable === false || rows.length > 0;
    table.removeAttribute('aria-busy');
  }

  // Reachable, or not with a headline (default "clinic record unreachable") and the technical detail.
  function setReachable(isReachable, detail, headline) {
    reachable = isReachable;
    section.dataset.state = isReachable ? 'live' : 'unreachable';
    section.classList.toggle('unreachable', !isReachable);
    const note = T.$('clinic-unreachable');
    note.replaceChildren();
    if (!isReachable) {
      note.append(T.el('strong', headline || _('clinic record unreachable')));
      if (detail) note.append(' ', T.el('span', detail, 'clinic-unreachable-detail'));
    }
    note.hidden = isReachable;
    render();
  }

  async function fetchOverview() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    try {
      const resp = await fetch('/api/clinic/overview', { headers: { Accept: 'application/json' },
        credentials: 'same-origin', cache: 'no-store', signal: abort.signal });
      let body = {};
      try {
        body = await resp.json();
      } catch (err) {
        body = {};
      }
      return { ok: resp.ok, status: resp.status, body };
    } catch (err) {
      return { ok: false, status: 0, body: {} };
    } finally {
      clearTimeout(timer);
    }
  }

  async function poll() {
    const r = await fetchOverview();
    if (r.ok && r.body.ok) {
      lastAnswerAt = performance.now();
      rows = Array.isArray(r.body.treadmills) ? r.body.treadmills : [];
      serverTime = r.body.server_time;
      T.pageMessage('');
      setReachable(true);
    } else if (r.status === 401) {
      T.pageMessage(_('Not logged in (or the login expired): log in on the dashboard, then reload this page.'));
      setReachable(false, '', _('not logged in'));
    } else if (r.status !== 0) {
      // The dashboard answered: the record is away (503) or another refusal; either way nothing is live.
      setReachable(false, r.body.message || _('refused (HTTP {status})', { status: r.status }));
    }
    // No answer at all: the watchdog below greys the table once 3 s have passed.
    setTimeout(poll, POLL_MS);
  }

  setInterval(() => {
    if (reachable !== false && performance.now() - lastAnswerAt > UNREACHABLE_AFTER_MS) {
      setReachable(false, _('no answer for {seconds} s', { seconds: Math.round((performance.now() - lastAnswerAt) / 1000) }));
    }
  }, 500);

  poll();
})();
