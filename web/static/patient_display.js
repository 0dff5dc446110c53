// The patient display (/patient): the session's remaining time and progress, a distance cue
// (good, step back, stopped), the belt speed and, after a trip, why and what to do. It follows
// /api/patient/stream, the dashboard's status stream projected on the server with no names or ids.
// Nothing shown outlives its status: without a fresh one for STALE_AFTER_MS every live value goes
// blank and the cue goes grey, so a frozen screen never says "good". Stop is a controlled stop,
// which anyone may give; this page offers nothing else.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const _ = window.I18n.gettext;
  const KMH_PER_MPS = 3.6;
  const KMH_PER_MPH = 1.609344;
  // The controller pushes a status at least every 50 ms while anything changes, and ~20 a second
  // while walking: this long without one means the screen is no longer live.
  const STALE_AFTER_MS = 1500;
  const units = document.querySelector('meta[name="display-units"]').content || 'km/h';
  const STOPS = JSON.parse($('stop-sentences').textContent);
  const CUE_WORDS = { good: _('Good'), step_back: _('Step back'), step_forward: _('Step forward'),
    stopped: _('Stopped') };

  let lastStatusAt = 0;
  let live = false;
  // The Stop message stays until the belt runs again after having stood (the next start), never into it.
  let stopMessage = null;

  function clock(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '--:--';
    const s = Math.max(0, Math.round(seconds));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  function speedText(mps) {
    if (mps === null || mps === undefined || !isFinite(mps)) return '--';
    const kmh = Math.abs(mps) * KMH_PER_MPS;
    return (units === 'mph' ? kmh / KMH_PER_MPH : kmh).toFixed(1);
  }

  function stopSentence(reasons) {
    const base = reasons.length ? String(reasons[0]).split(':')[0] : '';
    return Object.hasOwn(STOPS, base) ? STOPS[base] : STOPS[''];
  }

  function showCue(name) {
    $('main').dataset.cue = name;
    $('pd-cue-word').textContent = Object.hasOwn(CUE_WORDS, name) ? CUE_WORDS[name] : '--';
  }

  function render(s) {
    // A monotonic clock: a wall clock stepped back (NTP at a Pi's boot) must never hide a freeze.
    lastStatusAt = performance.now();
    live = true;
    $('pd-offline').hidden = true;
    if (stopMessage && s.state !== 'RUNNING') stopMessage.stood = true;
    else if (stopMessage && stopMessage.stood) {
      $('pd-stop-message').hidden = true;
      stopMessage = null;
    }
    showCue(s.cue);
    $('pd-speed').textContent = speedText(s.belt_speed_mps);
    const session = s.session;
    const progress = $('pd-progress');
    if (session) {
      $('pd-remaining').textContent = clock(session.remaining_s);
      $('pd-remaining-label').hidden = false;
      progress.max = Math.max(1, session.planned_s);
      progress.value = Math.min(session.planned_s, session.elapsed_s);
      $('pd-progress-text').textContent = _('{elapsed} of {planned}',
        { elapsed: clock(session.elapsed_s), planned: clock(session.planned_s) });
    } else {
      $('pd-remaining').textContent = '--:--';
      $('pd-remaining-label').hidden = true;
      progress.value = 0;
      $('pd-progress-text').textContent = _('No session');
    }
    const stopped = s.cue === 'stopped';
    $('pd-stopped').hidden = !stopped;
    $('pd-stop-sentence').textContent = stopped ? stopSentence(s.reasons || []) : '';
    $('main').dataset.seq = String(s.seq);
    // For the display-lag benchmark: when this status was shown, on the same clock as its t_wall.
    $('main').dataset.shownAt = String(Date.now() / 1000);
    $('main').dataset.tWall = String(s.t_wall);
  }

  function setStale(message) {
    live = false;
    showCue('unknown');
    $('pd-speed').textContent = '--';
    $('pd-remaining').textContent = '--:--';
    $('pd-progress-text').textContent = '';
    $('pd-stopped').hidden = true;
    $('pd-offline').textContent = message;
    $('pd-offline').hidden = false;
  }

  function connect() {
    const source = new EventSource('/api/patient/stream');
    source.onmessage = (ev) => {
      try {
        render(JSON.parse(ev.data));
      } catch (err) {
        setStale(_('Not live: ask your therapist'));
      }
    };
    source.addEventListener('offline', () => setStale(_('Not live: ask your therapist')));
    source.onerror = () => {
      setStale(_('Not live: ask your therapist'));
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    };
  }

  setInterval(() => {
    if (live && performance.now() - lastStatusAt > STALE_AFTER_MS) setStale(_('Not live: ask your therapist'));
  }, 250);

  // Stop: the controlled stop (no login needed). Said plainly whether it went through; a dashboard that does
  // not answer within STOP_TIMEOUT_MS counts as not gone through.
  const STOP_TIMEOUT_MS = 2000;
  async function stop() {
    const message = $('pd-stop-message');
    const button = $('pd-stop');
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), STOP_TIMEOUT_MS);
    let ok = false;
    button.disabled = true;
    try {
      const resp = await fetch('/api/stop', { method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { Accept: 'application/json' }, signal: abort.signal });
      ok = resp.ok;
    } catch (err) {
      ok = false;
    } finally {
      clearTimeout(timer);
      button.disabled = false;
    }
    message.textContent = ok ? _('Stopping the belt') : _('Stop did not go through: hold the handrails, call your therapist');
    message.classList.toggle('error', !ok);
    message.hidden = false;
    stopMessage = { stood: false };
  }

  $('pd-stop').addEventListener('click', stop);
  setStale(_('Connecting'));
  connect();
})();
