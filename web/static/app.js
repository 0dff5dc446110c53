// The therapist's dashboard. Live status comes over Server-Sent Events
// (/api/stream); commands are JSON POSTs with the CSRF token in X-CSRFToken.
// Everything from the controller is shown with textContent, never as HTML:
// names and messages can contain anything.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const KMH_PER_MPS = 3.6;
  const KMH_PER_MPH = 1.609344;
  const SPEED_STEP_KMH = 0.1;
  // The controller pushes ~20 statuses a second; silence this long means the view is stale.
  const STALE_AFTER_MS = 2500;
  const EVENTS_REFRESH_MS = 5000;

  let units = document.querySelector('meta[name="display-units"]').content || 'km/h';
  let status = null;
  let loggedIn = !$('therapist').hidden;
  let lastStatusAt = 0;
  let offlineReason = null;

  // ---- requests -------------------------------------------------------------------------

  const api = window.Requests.send;

  function say(id, text, isError) {
    const el = $(id);
    el.textContent = text || '';
    el.classList.toggle('error', Boolean(isError));
  }

  function explain(r) {
    if (r.ok) return r.body.message || 'ok';
    if (r.status === 409 && r.body.code === 'offline') return 'controller offline: ' + r.body.message;
    return r.body.message || ('refused (HTTP ' + r.status + ')');
  }

  // ---- stopping: always available -------------------------------------------------------

  async function stopCommand(path, label) {
    const r = await api('POST', path);
    if (r.ok) {
      say('stop-message', label + ': ' + explain(r), false);
      fetchStatus();
    } else {
      say('stop-message', label + ' NOT DELIVERED: ' + explain(r) + '. Use the physical E-stop.', true);
    }
    refreshEvents();
  }

  $('estop').addEventListener('click', () => stopCommand('/api/estop', 'E-STOP'));
  $('stop').addEventListener('click', () => stopCommand('/api/stop', 'Stop'));

  // ---- status display --------------------------------------------------------------------

  function speedText(kmh) {
    if (kmh === null || kmh === undefined || !isFinite(kmh)) return '--';
    return (units === 'mph' ? kmh / KMH_PER_MPH : kmh).toFixed(1);
  }

  function setOffline(reason) {
    offlineReason = reason;
    const el = $('offline');
    el.hidden = !reason;
    if (reason) {
      el.textContent = reason + ': the dashboard cannot see or command the treadmill. Use the physical E-stop.';
      const banner = $('state-banner');
      banner.textContent = 'OFFLINE';
      banner.className = 'banner state-offline';
      $('gap-mm').textContent = '--';
    }
  }

  function renderReasons(reasons) {
    const list = $('state-reasons');
    list.replaceChildren();
    for (const [code, message] of Object.entries(reasons || {})) {
      const li = document.createElement('li');
      li.textContent = message || code;
      list.appendChild(li);
    }
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
    const scale = $('scale');
    scale.replaceChildren();
    const stepMm = spanMm > 2000 ? 500 : 200;
    for (let mm = stepMm; mm < spanMm; mm += stepMm) {
      const t = document.createElementNS(scale.namespaceURI, 'text');
      t.setAttribute('x', x(mm).toFixed(1));
      t.setAttribute('y', '150');
      t.setAttribute('class', 'tick');
      t.textContent = mm + ' mm';
      scale.appendChild(t);
    }
    $('gap-mm').textContent = gap === null || gap === undefined ? '--' : String(Math.round(gap));
    $('stop-mm').textContent = Math.round(stopMm);
    $('warn-mm').textContent = Math.round(warnMm);
  }

  function formatTimer(seconds) {
    if (seconds === null || seconds === undefined) return '--:--';
    const total = Math.floor(seconds);
    const m = Math.floor(total / 60);
    const sec = String(total % 60).padStart(2, '0');
    return m + ':' + sec;
  }

  function render(s) {
    const previous = status;
    // A slow /api/status answer must not overwrite a newer pushed status
    // (seq restarts with the controller, hence the time check as well).
    if (previous && s.seq < previous.seq && s.t_wall <= previous.t_wall) return;
    status = s;
    lastStatusAt = Date.now();
    setOffline(null);
    if (s.units) units = s.units;
    const word = s.warning && s.state !== 'STOPPED' ? 'WARNING' : s.state;
    const banner = $('state-banner');
    banner.textContent = word;
    banner.className = 'banner state-' + String(word).toLowerCase();
    renderReasons(s.state === 'STOPPED' ? s.reasons : {});
    renderDeck(s);

    const beltKmh = (s.belt_speed_mps || 0) * KMH_PER_MPS;
    $('belt-speed').textContent = speedText(beltKmh);
    $('speed-unit').textContent = units;
    $('cap').textContent = speedText(s.cap_kmh) + ' ' + units;
    $('target-speed').textContent = speedText((s.target_mps || 0) * KMH_PER_MPS) + ' ' + units;
    const fill = s.cap_kmh > 0 ? Math.min(100, (beltKmh / s.cap_kmh) * 100) : 0;
    $('speed-meter').style.width = fill.toFixed(1) + '%';
    $('speed-meter').classList.toggle('over', beltKmh > s.cap_kmh);
    $('mode-label').textContent = s.mode;
    $('running-timer').textContent = formatTimer(s.running_for_s);
    $('trip-count').textContent = s.trip_count;
    $('link-state').textContent = s.link_ok ? 'ok' : 'LOST';
    $('relay-state').textContent = s.relay_energized ? 'closed (belt may run)' : 'open (belt stopped)';

    const standing = s.state === 'STOPPED' || s.state === 'READY';
    $('reset').disabled = s.state !== 'STOPPED';
    $('start').disabled = s.state !== 'READY';
    $('speed-up').disabled = s.state !== 'RUNNING';
    $('speed-down').disabled = s.state !== 'RUNNING';
    const modeSelect = $('mode');
    modeSelect.disabled = !standing;
    if (document.activeElement !== modeSelect) modeSelect.value = s.mode;
    $('demo').hidden = !s.demo;
    renderStorage(s.storage);

    if (!previous || previous.state !== s.state || previous.trip_count !== s.trip_count) refreshEvents();
    document.dispatchEvent(new CustomEvent('dashboard:status', { detail: s }));
  }

  // The history database cannot be written: sessions are not being saved (the message says why).
  function renderStorage(storage) {
    const el = $('storage-warning');
    const fault = Boolean(storage) && storage.ok === false;
    el.hidden = !fault;
    el.textContent = fault ? 'Session history is not being saved: ' + (storage.message || 'storage fault') : '';
  }

  async function fetchStatus() {
    const r = await api('GET', '/api/status');
    if (r.ok) render(r.body);
    else if (r.status === 409) setOffline('controller offline');
  }

  // ---- live stream -------------------------------------------------------------------------

  function connectStream() {
    const source = new EventSource('/api/stream');
    source.onmessage = (ev) => {
      try {
        render(JSON.parse(ev.data));
      } catch (err) {
        setOffline('unreadable status from the dashboard');
      }
    };
    source.addEventListener('offline', () => setOffline('controller offline'));
    // EventSource reconnects by itself (the server sets retry: 2 s).
    source.onerror = () => setOffline('connection to the dashboard lost, reconnecting');
  }

  setInterval(() => {
    if (!offlineReason && lastStatusAt && Date.now() - lastStatusAt > STALE_AFTER_MS) {
      setOffline('no live status for ' + Math.round((Date.now() - lastStatusAt) / 1000) + ' s');
    }
  }, 500);

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
      when.textContent = new Date(e.wall_time * 1000).toLocaleTimeString();
      const kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = e.kind;
      const msg = document.createElement('span');
      msg.textContent = e.message + (e.actor ? ' (' + e.actor + ')' : '');
      li.append(when, ' ', kind, ' ', msg);
      list.appendChild(li);
    }
  }

  setInterval(refreshEvents, EVENTS_REFRESH_MS);

  // ---- login -------------------------------------------------------------------------------

  function setSession(isIn, name) {
    loggedIn = isIn;
    $('therapist').hidden = !isIn;
    $('limits-panel').hidden = !isIn;
    $('login-form').hidden = isIn;
    $('whoami').textContent = name || '';
    document.dispatchEvent(new CustomEvent('dashboard:login', { detail: { loggedIn: isIn } }));
  }

  async function refreshSession() {
    await window.Requests.refreshToken();
  }

  window.Requests.onSessionRefresh((s) => setSession(s.logged_in, s.name));

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await api('POST', '/login', { name: $('login-name').value, password: $('login-password').value });
    $('login-password').value = '';
    if (r.ok) {
      window.Requests.setToken(r.body.csrf_token);
      say('login-error', '');
      setSession(true, r.body.name);
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
  $('start').addEventListener('click', () => {
    const raw = $('start-speed').value.trim();
    command('/api/start', raw === '' ? {} : { speed_kmh: Number(raw) });
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

  setSession(loggedIn, $('whoami').textContent);
  refreshSession();
  fetchStatus();
  refreshEvents();
  connectStream();
})();
