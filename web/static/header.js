// The header of every page: live state and its reasons in plain words, E-STOP and Stop
// (anyone, no login), and the running session's timer with Pause, Resume and End.
// Live status comes over Server-Sent Events (/api/stream); the page's own script
// listens for 'dashboard:status' (a fresh status) and 'dashboard:stale' (no live status:
// every live value must show as unknown).
// Nothing shown here outlives the status that made it true: each message tied to an
// action is judged again on every status, and cleared when the state moves on.
// Everything from the controller is shown with textContent, never as HTML.
'use strict';

window.Header = (function () {
  const _ = window.I18n.gettext;
  const $ = (id) => document.getElementById(id);
  const api = window.Requests.send;
  // code -> [what happened, what to do next], in the page's language; '' holds the pair for an unknown code.
  const PLAIN = JSON.parse($('plain-reasons').textContent);
  const UNKNOWN = PLAIN[''];
  // The controller pushes ~20 statuses a second; silence this long means the view is stale.
  const STALE_AFTER_MS = 2500;
  // A success message that no state change has cleared is old news after this long.
  const MESSAGE_TTL_MS = 15000;

  // The controller's words a page shows (states, session phases and statuses, modes, event kinds, roles), in
  // the page's language; word(table, value) gives a value no table knows (a newer controller's) as it is.
  const WORDS = {
    state: { RUNNING: _('RUNNING'), STOPPED: _('STOPPED'), READY: _('READY'), STOPPING: _('STOPPING'),
      WARNING: _('WARNING'), OFFLINE: _('OFFLINE') },
    phase: { walking: _('walking'), paused: _('paused'), finishing: _('finishing') },
    status: { active: _('active'), completed: _('completed'), ended: _('ended'), interrupted: _('interrupted') },
    mode: { reverse: _('reverse'), forward: _('forward') },
    modeLong: { reverse: _('reverse walking'), forward: _('forward walking') },
    kind: { trip: _('trip'), warn: _('warn'), state: _('state'), command: _('command'), refused: _('refused'),
      limits: _('limits'), fault: _('fault') },
    role: { therapist: _('therapist'), admin: _('admin') },
  };

  function word(table, value) {
    return Object.hasOwn(WORDS[table], value) ? WORDS[table][value] : String(value);
  }

  let status = null;
  let lastStatusAt = 0;
  let offlineReason = null;

  // ---- messages tied to an action ----------------------------------------------------------

  // id -> { seen: the first state after the action, until: expiry, recheck: fn(status) or null }
  const messages = new Map();

  function setText(id, text, isError) {
    const el = $(id);
    el.textContent = text || '';
    el.classList.toggle('error', Boolean(isError));
    el.hidden = !text;
  }

  // Show ``text`` in element ``id`` until the state changes (or, for a success, until it is old).
  // ``recheck(status)`` may re-judge it on each status: it returns [text, isError], or null to keep it.
  function actionMessage(id, text, isError, recheck) {
    setText(id, text, isError);
    if (!text) {
      messages.delete(id);
      return;
    }
    messages.set(id, { seen: undefined, until: isError ? Infinity : Date.now() + MESSAGE_TTL_MS,
      recheck: recheck || null });
  }

  function judgeMessages(s) {
    for (const [id, m] of messages) {
      if (m.recheck) {
        const verdict = m.recheck(s);
        if (verdict) {
          setText(id, verdict[0], verdict[1]);
          m.recheck = null;
          m.seen = s.state;
          m.until = Date.now() + MESSAGE_TTL_MS;
        }
        continue;
      }
      if (m.seen === undefined) m.seen = s.state;
      else if (s.state !== m.seen || Date.now() > m.until) actionMessage(id, '');
    }
  }

  function explain(r) {
    if (r.ok) return r.body.message || _('done');
    if (r.status === 409 && r.body.code === 'offline') return _('controller offline');
    if (r.status === 0) return _('dashboard not reachable');
    return r.body.message || _('refused (HTTP {status})', { status: r.status });
  }

  // ---- stopping: always available ----------------------------------------------------------

  // The states in which each stop has been carried out.
  const STOPPED_BY = { 'E-STOP': ['STOPPED'], Stop: ['STOPPED', 'STOPPING', 'READY'] };
  // Each stop as its button names it.
  const STOP_LABELS = { 'E-STOP': _('E-STOP'), Stop: _('Stop') };

  async function stopCommand(path, which) {
    const label = STOP_LABELS[which];
    const r = await api('POST', path);
    if (r.ok) {
      actionMessage('stop-message', _('{label}: {result}', { label, result: explain(r) }), false);
      fetchStatus();
      return;
    }
    // Not delivered, as far as the dashboard knows: the controller may still have carried it out
    // (a frozen controller answers late). The live state decides from the next status on.
    actionMessage('stop-message', _('{label} NOT DELIVERED ({reason}): use the physical E-stop',
      { label, reason: explain(r) }), true,
    (s) => (STOPPED_BY[which].includes(s.state)
      ? [_('{label}: the controller is {state} now', { label, state: word('state', s.state) }), false] : null));
  }

  $('estop').addEventListener('click', () => stopCommand('/api/estop', 'E-STOP'));
  $('stop').addEventListener('click', () => stopCommand('/api/stop', 'Stop'));

  // ---- state and reasons -------------------------------------------------------------------

  function plain(code) {
    const [base, sensor = ''] = String(code).split(/:(.*)/s);
    const [sentence, step] = Object.hasOwn(PLAIN, base) ? PLAIN[base] : UNKNOWN;
    const fill = (t) => t.replace('{Sensor}', sensor.charAt(0).toUpperCase() + sensor.slice(1))
      .replace('{sensor}', sensor);
    return [fill(sentence), fill(step)];
  }

  // Why the belt runs with a warning, as the controller says (status.warning_causes).
  const WARNINGS = {
    warn_zone: (s) => ({ text: _('Patient close to the rear edge: ask them to step forward'),
      details: _('gap {gap} mm, warn distance {warn} mm', {
        gap: s.gap_mm === null || s.gap_mm === undefined ? '--' : Math.round(s.gap_mm),
        warn: Math.round(s.warn_distance_mm) }) }),
    console_override: (s) => ({ text: _('Belt faster than set (treadmill console?): bringing it back'),
      details: _('belt {belt} km/h, set {set} km/h', { belt: (s.belt_speed_mps * 3.6).toFixed(2),
        set: (s.target_mps * 3.6).toFixed(2) }) }),
    overspeed: (s) => ({ text: _('Belt above its speed cap: slowing it'),
      details: _('belt {belt} km/h, cap {cap} km/h', { belt: (s.belt_speed_mps * 3.6).toFixed(2), cap: s.cap_kmh }) }),
  };

  function warningReasons(s) {
    const causes = (s.warning_causes || []).filter((c) => Object.hasOwn(WARNINGS, c));
    return causes.length ? causes.map((c) => WARNINGS[c](s))
      : [{ text: _('Warning from the safety controller'), details: _('no cause given') }];
  }

  // One line: the first reason and its next step; every reason and the technical text behind "details".
  function renderReasons(items) {
    const list = $('state-reasons');
    list.replaceChildren();
    if (!items.length) return;
    const li = document.createElement('li');
    const details = document.createElement('details');
    const summary = document.createElement('summary');
    // The disclosure's own words, for style.css to show (content: attr(...)) in the page's language.
    summary.dataset.more = _('details');
    summary.dataset.less = _('hide');
    const line = document.createElement('span');
    line.className = 'reason-line';
    line.textContent = items.length > 1
      ? _('{reason} (+{count} more)', { reason: items[0].text, count: items.length - 1 }) : items[0].text;
    summary.append(line);
    details.append(summary);
    for (const item of items) {
      const p = document.createElement('p');
      p.className = 'reason-details';
      const strong = document.createElement('strong');
      strong.textContent = item.text;
      p.append(strong, document.createElement('br'), item.details);
      details.append(p);
    }
    li.append(details);
    list.append(li);
  }

  function reasonItems(s) {
    if (s.state === 'STOPPED') {
      return Object.entries(s.reasons || {}).map(([code, message]) => {
        const [sentence, step] = plain(code);
        return { text: _('{what}. {next}.', { what: sentence, next: step }), details: message || code };
      });
    }
    if (s.warning && s.state === 'RUNNING') return warningReasons(s);
    return [];
  }

  function renderStorage(storage) {
    const fault = Boolean(storage) && storage.ok === false;
    setText('storage-warning', fault ? _('Session history is not being saved: {reason}',
      { reason: storage.message || _('storage fault') }) : '', false);
  }

  // ---- the session strip -------------------------------------------------------------------

  function clock(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '--:--';
    const total = Math.max(0, Math.floor(seconds));
    return Math.floor(total / 60) + ':' + String(total % 60).padStart(2, '0');
  }

  function phaseWords(session) {
    if (session.phase === 'paused') {
      const why = String(session.paused_reason || '');
      if (why.startsWith('tripped')) return _('paused: the belt stopped');
      return why ? _('paused: {why}', { why }) : word('phase', 'paused');
    }
    if (session.phase === 'finishing') return _('ending: slowing to a stop');
    if (session.end_warning) {
      return _('{phase}, ending in {time}', { phase: word('phase', session.phase), time: clock(session.remaining_s) });
    }
    return word('phase', session.phase);
  }

  function renderSession(s) {
    const session = s ? s.session : null;
    $('header-session').hidden = !session;
    if (!session) return;
    $('session-timer').textContent = clock(session.elapsed_s) + ' / ' + clock(session.planned_s);
    const phase = $('session-phase');
    phase.textContent = phaseWords(session);
    phase.className = 'phase phase-' + String(session.phase).replace(/[^a-z]/g, '') +
      (session.end_warning ? ' end-warning' : '');
    $('session-pause').hidden = session.phase === 'paused';
    $('session-resume').hidden = session.phase !== 'paused';
    $('session-pause').disabled = session.phase !== 'walking';
    $('session-resume').disabled = session.phase !== 'paused' || s.state !== 'READY';
    $('session-end').disabled = false;
  }

  // What a Pause, Resume or End did, when the answer says nothing of its own.
  const DONE = { pause: _('paused'), resume: _('resumed'), end: _('ended') };

  async function sessionControl(action) {
    const r = await api('POST', '/api/sessions/current/' + action);
    const errors = (r.body && r.body.errors) || [];
    const text = r.ok ? (r.body.message || DONE[action]) : (errors.length ? errors.map((e) => e.message).join('; ')
      : explain(r));
    actionMessage('header-message', text, !r.ok);
    fetchStatus();
    document.dispatchEvent(new CustomEvent('dashboard:action', { detail: { action } }));
  }

  $('session-pause').addEventListener('click', () => sessionControl('pause'));
  $('session-resume').addEventListener('click', () => sessionControl('resume'));
  $('session-end').addEventListener('click', () => sessionControl('end'));

  // ---- status ------------------------------------------------------------------------------

  function render(s) {
    const previous = status;
    // A slow /api/status answer must not overwrite a newer pushed status
    // (seq restarts with the controller, hence the time check as well).
    if (previous && s.seq < previous.seq && s.t_wall <= previous.t_wall) return;
    status = s;
    lastStatusAt = Date.now();
    setOffline(null);
    const state = s.warning && s.state === 'RUNNING' ? 'WARNING' : s.state;
    const banner = $('state-banner');
    banner.textContent = word('state', state);
    banner.className = 'banner state-' + String(state).toLowerCase();
    renderReasons(reasonItems(s));
    renderStorage(s.storage);
    renderSession(s);
    judgeMessages(s);
    document.dispatchEvent(new CustomEvent('dashboard:status', { detail: s }));
  }

  function setOffline(reason) {
    const was = offlineReason;
    offlineReason = reason;
    setText('offline', reason ? _('{reason}: the dashboard cannot see or command the treadmill. Use the physical E-stop.',
      { reason }) : '', false);
    if (!reason) return;
    const banner = $('state-banner');
    banner.textContent = word('state', 'OFFLINE');
    banner.className = 'banner state-offline';
    renderReasons([]);
    // The last session figures are not live any more either.
    $('session-timer').textContent = '--:-- / --:--';
    $('session-phase').textContent = _('not live');
    $('session-phase').className = 'phase';
    for (const id of ['session-pause', 'session-resume', 'session-end']) $(id).disabled = true;
    if (!was) document.dispatchEvent(new CustomEvent('dashboard:stale', { detail: { reason } }));
  }

  async function fetchStatus() {
    const r = await api('GET', '/api/status');
    if (r.ok) render(r.body);
    else if (r.status === 409) setOffline(_('controller offline'));
  }

  let streamRetryMs = 2000;

  function connectStream() {
    const source = new EventSource('/api/stream');
    source.onopen = () => { streamRetryMs = 2000; };
    source.onmessage = (ev) => {
      try {
        render(JSON.parse(ev.data));
      } catch (err) {
        setOffline(_('unreadable status from the dashboard'));
      }
    };
    source.addEventListener('offline', () => setOffline(_('controller offline')));
    // EventSource reconnects by itself (the server sets retry: 2 s), except after an answer that is not a
    // stream (e.g. 503, too many live views): then this page tries again, a little later each time.
    source.onerror = () => {
      setOffline(_('connection to the dashboard lost'));
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connectStream, streamRetryMs);
        streamRetryMs = Math.min(30000, streamRetryMs * 2);
        fetchStatus();
      }
    };
  }

  setInterval(() => {
    if (!offlineReason && lastStatusAt && Date.now() - lastStatusAt > STALE_AFTER_MS) {
      setOffline(_('no live status for {seconds} s', { seconds: Math.round((Date.now() - lastStatusAt) / 1000) }));
    }
  }, 500);

  // Who is logged in, and with which role: the nav's admin links (Accounts, Audit) show for an admin only,
  // "My account" for anyone logged in. Called after a login or logout and on every /api/session refresh.
  function setLoggedIn(isIn, name, role) {
    const isAdmin = Boolean(isIn) && role === 'admin';
    $('top').dataset.loggedIn = isIn ? '1' : '0';
    $('top').dataset.role = isIn && role ? role : '';
    document.querySelector('#header-session .session-buttons').hidden = !isIn;
    const who = $('nav-who');
    who.hidden = !isIn;
    $('nav-whoami').textContent = isIn ? (name || '') : '';
    $('nav-role').textContent = isIn && role ? _('({role})', { role: word('role', role) }) : '';
    $('nav-account').hidden = !isIn;
    $('nav-accounts').hidden = !isAdmin;
    $('nav-audit').hidden = !isAdmin;
  }

  // Every session refresh (a stale CSRF token, a page's own check) brings the login's name and role.
  window.Requests.onSessionRefresh((s) => setLoggedIn(s.logged_in, s.name, s.role));

  // The header's height, for scroll-padding-top: focus is never hidden under it.
  const top = $('top');
  new ResizeObserver(() => {
    document.documentElement.style.setProperty('--header-h', top.getBoundingClientRect().height + 'px');
  }).observe(top);

  fetchStatus();
  connectStream();

  return {
    api, explain, actionMessage, fetchStatus, setLoggedIn, plain, word,
    status: () => status,
    isLive: () => !offlineReason && status !== null,
  };
})();
