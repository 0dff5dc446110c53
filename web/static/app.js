// The therapist's dashboard: the rear edge, the belt, the therapist's commands and the events.
// The header (header.js) owns the live status, the state, E-STOP and Stop, and the session strip;
// this page listens for its 'dashboard:status' and 'dashboard:stale' events. Commands are JSON
// POSTs with the CSRF token in X-CSRFToken. Everything from the controller is shown with
// textContent, never as HTML: names and messages can contain anything.
'use strict';

(function () {
  const _ = window.I18n.gettext;
  const $ = (id) => document.getElementById(id);
  const KMH_PER_MPS = 3.6;
  const KMH_PER_MPH = 1.609344;
  const SPEED_STEP_KMH = 0.1;
  const EVENTS_REFRESH_MS = 5000;

  let units = document.querySelector('meta[name="display-units"]').content || 'km/h';
  let status = null;
  let loggedIn = !$('therapist').hidden;

  // ---- requests -------------------------------------------------------------------------

  const H = window.Header;
  const word = H.word;
  const api = H.api;
  const explain = H.explain;
  // A message about an action: cleared by the header when the state moves on (or it grows old).
  const say = (id, text, isError) => H.actionMessage(id, text, isError);

  // ---- status display --------------------------------------------------------------------

  function speedText(kmh) {
    if (kmh === null || kmh === undefined || !isFinite(kmh)) return '--';
    return (units === 'mph' ? kmh / KMH_PER_MPH : kmh).toFixed(1);
  }

  function renderDeck(s) {
    const stopMm = s.stop_distance_mm || 0;
    const warnMm = Math.max(s.warn_distance_mm || 0, stopMm);
    const gap = s.gap_mm;
    // Show at least 1 m, and always the whole warn zone and the patient with some room.
    const spanMm = Math.max(1000, warnMm * 1.4, (gap || 0) * 1.1);
    const x = (mm) => Math.max(0, Math.min(1000, (mm / spanMm) * 1000));
    $('zone-stop').setAttribute('width', x(stopMm).toFixed(1));
    $('zone-warn').setAttribute('width', x(warnMm).toFixed(1));
    const patient = $('patient');
    patient.setAttribute('visibility', gap === null || gap === undefined ? 'hidden' : 'visible');
    if (gap !== null && gap !== undefined) patient.setAttribute('transform', 'translate(' + x(gap).toFixed(1) + ' 0)');
    patient.classList.toggle('in-stop', gap !== null && gap <= stopMm);
    patient.classList.toggle('in-warn', gap !== null && gap > stopMm && gap <= warnMm);
    // The picture scales with the page; its labels must not: 13 px on screen at every width,
    // and ticks far enough apart (about 80 px) that they never overlap.
    const widthPx = Math.max(1, $('deck').getBoundingClientRect().width);
    const unitsPerPx = 1000 / widthPx;
    const fontUnits = (13 * unitsPerPx).toFixed(1);
    $('deck').setAttribute('viewBox', '0 0 1000 ' + (128 + 20 * unitsPerPx).toFixed(0));
    const scale = $('scale');
    scale.replaceChildren();
    const stepMm = [100, 200, 500, 1000, 2000].find((mm) => (mm / spanMm) * widthPx >= 80) || 5000;
    for (let mm = stepMm; (mm / spanMm) * widthPx < widthPx - 40; mm += stepMm) {
      const t = document.createElementNS(scale.namespaceURI, 'text');
      t.setAttribute('x', x(mm).toFixed(1));
      t.setAttribute('y', (124 + 14 * unitsPerPx).toFixed(1));
      t.setAttribute('class', 'tick');
      t.setAttribute('font-size', fontUnits);
      t.textContent = mm + ' mm';
      scale.appendChild(t);
    }
    // No fresh sensor sees the patient: the gap is unknown, never the last number.
    unknown('gap-mm', gap === null || gap === undefined, String(Math.round(gap)));
    unknown('stop-mm', false, String(Math.round(stopMm)));
    unknown('warn-mm', false, String(Math.round(warnMm)));
  }

  function formatTimer(seconds) {
    if (seconds === null || seconds === undefined) return '--:--';
    const total = Math.floor(seconds);
    const m = Math.floor(total / 60);
    const sec = String(total % 60).padStart(2, '0');
    return m + ':' + sec;
  }

  // A live value whose input is stale shows as unknown, greyed: never as its last number.
  function unknown(id, isUnknown, text) {
    const el = $(id);
    el.textContent = isUnknown ? '--' : text;
    el.classList.toggle('stale', isUnknown);
  }

  function render(s) {
    const previous = status;
    status = s;
    if (s.units) units = s.units;
    renderDeck(s);

    // Without the treadmill link the belt's last speed is history, not the present.
    const linkOk = Boolean(s.link_ok);
    const beltKmh = (s.belt_speed_mps || 0) * KMH_PER_MPS;
    unknown('belt-speed', !linkOk, speedText(beltKmh));
    $('speed-unit').textContent = units;
    unknown('cap', false, speedText(s.cap_kmh) + ' ' + units);
    unknown('target-speed', false, speedText((s.target_mps || 0) * KMH_PER_MPS) + ' ' + units);
    const fill = linkOk && s.cap_kmh > 0 ? Math.min(100, (beltKmh / s.cap_kmh) * 100) : 0;
    $('speed-meter').style.width = fill.toFixed(1) + '%';
    $('speed-meter').classList.toggle('over', linkOk && beltKmh > s.cap_kmh);
    unknown('mode-label', false, word('modeLong', s.mode === 'reverse' ? 'reverse' : 'forward'));
    unknown('running-timer', false, formatTimer(s.running_for_s));
    unknown('trip-count', false, String(s.trip_count));
    $('link-state').textContent = linkOk ? _('ok') : _('LOST');
    $('link-state').classList.toggle('error', !linkOk);
    $('relay-state').textContent = s.relay_energized ? _('closed: the belt may run') : _('open: the belt cannot run');

    const standing = s.state === 'STOPPED' || s.state === 'READY';
    $('reset').disabled = s.state !== 'STOPPED';
    $('start').disabled = s.state !== 'READY';
    const target = Math.round((s.target_mps || 0) * KMH_PER_MPS * 10) / 10;
    // A control that cannot act is disabled: no faster than the cap, no slower than the slowest speed.
    $('speed-up').disabled = s.state !== 'RUNNING' || target + SPEED_STEP_KMH > s.cap_kmh + 1e-9;
    $('speed-down').disabled = s.state !== 'RUNNING' || target - SPEED_STEP_KMH < (s.min_speed_kmh || 0) - 1e-9;
    const modeSelect = $('mode');
    modeSelect.disabled = !standing;
    if (document.activeElement !== modeSelect) modeSelect.value = s.mode;
    // The plain Start's speed, shown: the last speed set, else the slowest (the controller's own default).
    const startSpeed = $('start-speed');
    startSpeed.max = s.cap_kmh;
    if (s.min_speed_kmh) startSpeed.min = s.min_speed_kmh;
    if (startSpeed.dataset.dirty !== '1' && document.activeElement !== startSpeed) {
      const fallback = s.min_speed_kmh || '';
      startSpeed.value = target > 0 ? Math.min(target, s.cap_kmh) : fallback;
    }
    $('demo').hidden = !s.demo;
    for (const button of document.querySelectorAll('#demo button')) button.disabled = false;

    renderClinic(s);

    if (!previous || previous.state !== s.state || previous.trip_count !== s.trip_count) refreshEvents();
  }

  // A treadmill of a clinic record: whether its history reaches the clinic's server, the rows still waiting
  // to go, and a looser prescription from there that waits for the belt to stand. Nothing without a clinic.
  function renderClinic(s) {
    const clinic = s.clinic;
    const state = $('clinic-record-state');
    $('clinic-record').hidden = !clinic;
    $('clinic-record').classList.toggle('error', Boolean(clinic) && !clinic.connected);
    state.classList.remove('stale');
    if (!clinic) {
      state.textContent = '';
      setClinicOutbox(0);
      setClinicPending(null);
      return;
    }
    state.textContent = clinic.connected ? _('clinic record: shipping')
      : _('clinic record unreachable: {message}', { message: clinic.message || '--' });
    setClinicOutbox(s.storage ? s.storage.outbox : 0);
    setClinicPending(clinic.pending_prescription);
  }

  function setClinicOutbox(rows) {
    const outbox = $('clinic-record-outbox');
    const waiting = Number.isFinite(rows) && rows > 0;
    outbox.hidden = !waiting;
    if (!waiting) outbox.textContent = '';
    else outbox.textContent = '· ' + (rows === 1 ? _('1 row waiting') : _('{count} rows waiting', { count: rows }));
  }

  function setClinicPending(pending) {
    const line = $('clinic-pending');
    line.hidden = !pending;
    line.textContent = !pending ? ''
      : _("patient {patient}'s looser prescription from the clinic record applies once the belt stands",
        { patient: pending.patient_id });
  }

  // No live status: every live figure on this page is unknown.
  function renderStale() {
    status = null;
    for (const id of ['belt-speed', 'gap-mm', 'stop-mm', 'warn-mm', 'cap', 'target-speed', 'mode-label',
      'running-timer', 'trip-count']) unknown(id, true, '');
    $('speed-meter').style.width = '0%';
    $('speed-meter').classList.remove('over');
    $('zone-stop').setAttribute('width', '0');
    $('zone-warn').setAttribute('width', '0');
    $('link-state').textContent = '--';
    $('relay-state').textContent = '--';
    $('patient').setAttribute('visibility', 'hidden');
    for (const id of ['reset', 'start', 'speed-up', 'speed-down', 'mode']) $(id).disabled = true;
    for (const button of document.querySelectorAll('#demo button')) button.disabled = true;
    // The clinic line (shown on a clinic's treadmill only) is unknown too; a waiting prescription is not claimed.
    unknown('clinic-record-state', true, '');
    $('clinic-record').classList.remove('error');
    setClinicOutbox(0);
    setClinicPending(null);
  }

  document.addEventListener('dashboard:status', (ev) => render(ev.detail));
  document.addEventListener('dashboard:stale', renderStale);
  const fetchStatus = H.fetchStatus;

  // ---- events ------------------------------------------------------------------------------

  async function refreshEvents() {
    const r = await api('GET', '/api/events?limit=30');
    if (!r.ok) return;
    const list = $('events');
    list.replaceChildren();
    for (const e of r.body.events || []) {
      const li = document.createElement('li');
      li.className = 'event kind-' + String(e.kind).replace(/[^a-z_]/g, '');
      const when = document.createElement('time');
      when.textContent = new Date(e.wall_time * 1000).toLocaleTimeString(window.I18n.locale);
      const kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = word('kind', e.kind);
      const msg = document.createElement('span');
      msg.textContent = e.message + (e.actor ? ' (' + e.actor + ')' : '');
      li.append(when, ' ', kind, ' ', msg);
      list.appendChild(li);
    }
  }

  setInterval(refreshEvents, EVENTS_REFRESH_MS);

  // ---- login -------------------------------------------------------------------------------

  function setSession(isIn, name, role) {
    // A token refresh that leaves the login as it was changes nothing (and reloads no form).
    const changed = isIn !== loggedIn;
    loggedIn = isIn;
    H.setLoggedIn(isIn, name, role);
    $('therapist').hidden = !isIn;
    $('limits-panel').hidden = !isIn;
    $('login-form').hidden = isIn;
    $('whoami').textContent = name || '';
    if (changed) document.dispatchEvent(new CustomEvent('dashboard:login', { detail: { loggedIn: isIn } }));
  }

  async function refreshSession() {
    await window.Requests.refreshToken();
  }

  window.Requests.onSessionRefresh((s) => setSession(s.logged_in, s.name, s.role));

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await api('POST', '/login', { name: $('login-name').value, password: $('login-password').value });
    $('login-password').value = '';
    if (r.ok) {
      window.Requests.setToken(r.body.csrf_token);
      say('login-error', '');
      setSession(true, r.body.name, r.body.role);
    } else {
      say('login-error', explain(r), true);
    }
  });

  $('logout').addEventListener('click', async () => {
    const r = await api('POST', '/logout');
    if (r.body) window.Requests.setToken(r.body.csrf_token);
    setSession(false, null);
  });

  // ---- therapist commands ------------------------------------------------------------------

  async function command(path, body) {
    const r = await api('POST', path, body);
    say('command-message', explain(r), !r.ok);
    if (r.ok) fetchStatus();
    refreshEvents();
    return r;
  }

  $('reset').addEventListener('click', () => command('/api/reset'));
  $('start-speed').addEventListener('input', (ev) => { ev.target.dataset.dirty = '1'; });
  $('start').addEventListener('click', async () => {
    const raw = $('start-speed').value.trim();
    const r = await command('/api/start', raw === '' ? {} : { speed_kmh: isFinite(Number(raw)) ? Number(raw) : raw });
    if (r.ok) $('start-speed').dataset.dirty = '0';
  });

  function stepSpeed(sign) {
    if (!status) return;
    const base = (status.target_mps || status.commanded_mps || 0) * KMH_PER_MPS;
    const next = Math.round((base + sign * SPEED_STEP_KMH) * 10) / 10;
    command('/api/speed', { speed_kmh: next });
  }

  $('speed-up').addEventListener('click', () => stepSpeed(+1));
  $('speed-down').addEventListener('click', () => stepSpeed(-1));
  $('mode').addEventListener('change', async () => {
    const r = await command('/api/mode', { mode: $('mode').value });
    if (!r.ok && status) $('mode').value = status.mode;
  });

  // ---- demo --------------------------------------------------------------------------------

  for (const button of document.querySelectorAll('#demo button[data-action]')) {
    button.addEventListener('click', async () => {
      const r = await api('POST', '/api/demo/' + button.dataset.action);
      say('demo-message', explain(r), !r.ok);
      refreshEvents();
    });
  }

  // ---- start -------------------------------------------------------------------------------

  // For session_panel.js: the same requests (CSRF token, stale-token retry) and refreshes.
  window.Dashboard = { api, explain, say, fetchStatus, refreshEvents };

  setSession(loggedIn, $('whoami').textContent, $('top').dataset.role);
  refreshSession();
  refreshEvents();
  // header.js may have had a status, or lost it, before this script listened.
  if (H.isLive()) render(H.status());
  else renderStale();
})();
