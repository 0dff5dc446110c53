// Small inline-SVG charts, drawn here so that nothing comes from another site
// (the CSP allows our own scripts only). Positions are SVG attributes and
// looks are CSS classes in style.css: no style attributes, which the CSP forbids.
//
// Each chart is drawn at its rendered size: its viewBox is the element's width in CSS
// pixels by a height chosen for that width, so one unit is one pixel and a 12px label is
// 12 px on a phone as on a tablet. A ResizeObserver redraws it when its width changes.
'use strict';

window.Charts = (function () {
  const _ = window.I18n.gettext;
  // Room for the tick labels left and right, the axis labels on top and the time labels below.
  const MARGIN = { left: 48, right: 44, top: 26, bottom: 30 };
  // The timeline is drawn with about this many points, however long the session.
  const TIMELINE_POINTS = 1000;
  // Room per x label, in px: the widest at 12px ("88:88" about 32 px, "Nov 28" about 40) and a gap.
  const TIME_LABEL_PX = 72;
  const DATE_LABEL_PX = 64;
  // Vertical room per y tick, in px.
  const Y_TICK_PX = 36;
  // Steps of a time axis, in seconds: each label is m:ss.
  const TIME_STEPS_S = [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200];
  const REDRAW_DELAY_MS = 120;

  // ---- pure helpers (tested in the browser: tests/e2e/test_charts.py) ---------------------

  // Seconds as m:ss (minutes may pass 59: 75:00 is an hour and a quarter); negatives as 0:00.
  function mmss(seconds) {
    const total = Math.max(0, Math.round(Number(seconds) || 0));
    const s = total % 60;
    return Math.floor(total / 60) + ':' + (s < 10 ? '0' : '') + s;
  }

  // How many labels of labelPx fit side by side in widthPx (at least 2).
  function maxTicks(widthPx, labelPx) {
    return Math.max(2, Math.floor(widthPx / labelPx));
  }

  // Ticks of a time axis from 0 to tEnd seconds: whole steps of TIME_STEPS_S, at most maxCount.
  function timeTicks(tEnd, maxCount) {
    const end = Math.max(0, Number(tEnd) || 0);
    const count = Math.max(2, maxCount);
    const step = TIME_STEPS_S.find((s) => Math.floor(end / s) + 1 <= count) ||
      Math.ceil(end / (count - 1) / 3600) * 3600;
    const ticks = [];
    for (let t = 0; t <= end + 1e-9; t += step) ticks.push(t);
    return ticks;
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo || 1;
    const raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
    return ticks;
  }

  function niceMax(value, floor, count) {
    const top = Math.max(value || 0, floor);
    const ticks = niceTicks(0, top, count || 5);
    const last = ticks[ticks.length - 1];
    return last >= top ? last : last + (ticks[1] - ticks[0] || top);
  }

  // Sessions in the order they started, each its own x (0, 1, ...): two on one day never share one.
  // points: [{x: unix s, key}] of every series; returns a Map key -> index and the sorted keys' times.
  function sessionOrder(points) {
    const byKey = new Map();
    for (const p of points) {
      const key = p.key !== undefined ? p.key : p.x;
      if (!byKey.has(key)) byKey.set(key, p.x);
    }
    const keys = [...byKey.keys()].sort((a, b) => byKey.get(a) - byKey.get(b) || (a < b ? -1 : a > b ? 1 : 0));
    return { index: new Map(keys.map((k, i) => [k, i])), times: keys.map((k) => byKey.get(k)) };
  }

  // Which sessions get a date label: the first of each day, skipped when closer than minGap
  // (in index units) to the previous label. dayOf(t) names the day of a unix time.
  function dateLabelIndexes(times, minGap, dayOf) {
    const out = [];
    let lastDay = null;
    let lastIndex = -Infinity;
    times.forEach((t, i) => {
      const day = dayOf(t);
      if (day !== lastDay && i - lastIndex >= minGap) {
        out.push(i);
        lastIndex = i;
      }
      lastDay = day;
    });
    return out;
  }

  // ---- SVG building ----------------------------------------------------------------------

  function node(svg, tag, attrs, text) {
    // The SVG namespace is taken from the page's own <svg>, so no URL is written here.
    const n = document.createElementNS(svg.namespaceURI, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, typeof v === 'number' ? v.toFixed(1) : v);
    if (text !== undefined) n.textContent = String(text);
    return n;
  }

  // The width of the SVG's drawing area in CSS px, fractions kept (clientWidth rounds them,
  // and a viewBox 1 px wider than the box would shrink 12px text to 11.96 px); 0 while hidden.
  function widthOf(svg) {
    const inner = svg.getBoundingClientRect().width - 2 * (svg.clientLeft || 0);
    return Math.max(0, Math.round(inner * 100) / 100);
  }

  // Size the SVG to its rendered width (CSS px) and a height for that width; returns the plot box.
  function fit(svg, heightOf) {
    const width = widthOf(svg) || 640;
    const height = Math.round(heightOf(width));
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    return { width, height, x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top };
  }

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const timelineHeight = (w) => clamp(w * 0.34, 220, 320);
  const datedHeight = (w) => clamp(w * 0.5, 190, 260);

  // Draw now and again whenever the element's width changes (debounced). One observer per SVG:
  // drawing it again with new data replaces what is drawn on a resize.
  const drawers = new WeakMap();
  function responsive(svg, draw) {
    let entry = drawers.get(svg);
    if (!entry) {
      entry = { draw, width: null, timer: null, observer: null };
      drawers.set(svg, entry);
      if (window.ResizeObserver) {
        entry.observer = new ResizeObserver(() => {
          clearTimeout(entry.timer);
          entry.timer = setTimeout(() => {
            const width = widthOf(svg);
            if (width && width !== entry.width) {
              entry.width = width;
              entry.draw();
            }
          }, REDRAW_DELAY_MS);
        });
        entry.observer.observe(svg);
      }
    }
    entry.draw = draw;
    entry.width = widthOf(svg);
    return draw();
  }

  function linear(d0, d1, r0, r1) {
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  function empty(svg, message, heightOf) {
    responsive(svg, () => {
      svg.replaceChildren();
      const b = fit(svg, heightOf || datedHeight);
      svg.appendChild(node(svg, 'text', { x: b.width / 2, y: b.height / 2, class: 'chart-empty' }, message));
    });
  }

  function yAxis(svg, b, y, ticks, side, label, cls) {
    const x = side === 'left' ? b.x0 : b.x1;
    svg.appendChild(node(svg, 'line', { x1: x, y1: b.y0, x2: x, y2: b.y1, class: 'axis' }));
    for (const t of ticks) {
      if (side === 'left') {
        svg.appendChild(node(svg, 'line', { x1: b.x0, y1: y(t), x2: b.x1, y2: y(t), class: 'gridline' }));
      }
      svg.appendChild(node(svg, 'text', { x: side === 'left' ? x - 6 : x + 6, y: y(t) + 4,
        class: 'tick ' + (side === 'left' ? 'tick-left' : 'tick-right') + (cls ? ' ' + cls : '') }, t));
    }
    if (label) {
      svg.appendChild(node(svg, 'text', { x: side === 'left' ? 4 : b.width - 4, y: 15,
        class: 'axis-label ' + (side === 'left' ? 'tick-start' : 'tick-end') + (cls ? ' ' + cls : '') }, label));
    }
  }

  // ticks: [{at, text}] (text empty: a tick mark without a label).
  function xAxis(svg, b, x, ticks) {
    svg.appendChild(node(svg, 'line', { x1: b.x0, y1: b.y0, x2: b.x1, y2: b.y0, class: 'axis' }));
    for (const t of ticks) {
      svg.appendChild(node(svg, 'line', { x1: x(t.at), y1: b.y0, x2: x(t.at), y2: b.y0 + 4, class: 'axis' }));
      if (!t.text) continue;
      svg.appendChild(node(svg, 'text', { x: x(t.at), y: b.y0 + 18, class: 'tick tick-middle x-tick' }, t.text));
    }
  }

  // Lines broken where a value is missing (null): no line is drawn across a gap in the data.
  function pathOf(points, x, y) {
    let d = '';
    let pen = false;
    for (const p of points) {
      if (!isValue(p.y)) {
        pen = false;
        continue;
      }
      d += (pen ? 'L' : 'M') + x(p.x).toFixed(1) + ' ' + y(p.y).toFixed(1);
      pen = true;
    }
    return d;
  }

  function isValue(v) {
    return v !== null && v !== undefined && isFinite(v);
  }

  // ---- charts over the sessions ----------------------------------------------------------

  function dayOf(t) {
    const d = new Date(t * 1000);
    return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate();
  }

  function dateLabel(t) {
    return new Date(t * 1000).toLocaleDateString(window.I18n.locale, { month: 'short', day: 'numeric' });
  }

  // series: [{label, cls, points: [{x: unix s, key, y, title, flag}]}], opts: {yMax, yFloor, yLabel, emptyText}.
  // Sessions are set out in the order they started, one x each, with the date under the first of each day.
  function dated(svg, series, opts) {
    const all = series.flatMap((s) => s.points).filter((p) => isValue(p.y));
    if (all.length === 0) {
      empty(svg, opts.emptyText || _('no sessions yet'), datedHeight);
      return;
    }
    const order = sessionOrder(series.flatMap((s) => s.points));
    const n = order.times.length;
    const at = (p) => order.index.get(p.key !== undefined ? p.key : p.x);
    responsive(svg, () => {
      svg.replaceChildren();
      const b = fit(svg, datedHeight);
      const x = linear(-0.5, n - 0.5, b.x0, b.x1);
      const yMax = opts.yMax !== undefined ? opts.yMax : niceMax(Math.max(...all.map((p) => p.y)), opts.yFloor || 1);
      const y = linear(0, yMax, b.y0, b.y1);
      yAxis(svg, b, y, niceTicks(0, yMax, Math.max(2, Math.floor((b.y0 - b.y1) / Y_TICK_PX))), 'left', opts.yLabel);
      const perSession = (b.x1 - b.x0) / n;
      const labelled = new Set(dateLabelIndexes(order.times, Math.ceil(DATE_LABEL_PX / perSession), dayOf));
      xAxis(svg, b, x, order.times.map((t, i) => ({ at: i, text: labelled.has(i) ? dateLabel(t) : '' })));
      for (const s of series) {
        const sorted = s.points.map((p) => ({ ...p, i: at(p) })).sort((p, q) => p.i - q.i);
        svg.appendChild(node(svg, 'path', { d: pathOf(sorted.map((p) => ({ x: p.i, y: p.y })), x, y),
          class: 'series ' + s.cls }));
        for (const p of sorted) {
          if (!isValue(p.y)) continue;
          const dot = node(svg, 'circle', { cx: x(p.i), cy: y(p.y), r: p.flag ? 6 : 4,
            class: 'dot ' + s.cls + (p.flag ? ' flagged' : '') });
          dot.appendChild(node(svg, 'title', {}, p.title || _('{field}: {message}', { field: s.label, message: p.y })));
          svg.appendChild(dot);
        }
      }
    });
  }

  // ---- a session's timeline --------------------------------------------------------------

  // Keep, of each stretch of samples, the one with the smallest gap: the closest approach
  // to the edge must never be smoothed away by thinning.
  function decimateMinGap(samples, target) {
    if (samples.length <= target) return samples;
    const size = samples.length / target;
    const out = [];
    for (let b = 0; b < target; b++) {
      const from = Math.floor(b * size);
      const to = Math.min(samples.length, Math.floor((b + 1) * size));
      let best = null;
      for (let i = from; i < to; i++) {
        const s = samples[i];
        if (best === null || (s.gap !== null && (best.gap === null || s.gap < best.gap))) best = s;
      }
      if (best !== null) out.push(best);
    }
    return out;
  }

  // The stop and warn distances as steps [{t0, t1, stop, warn}]: each sample's hold until the next
  // sample; of each stretch of many samples, the largest (the band is never drawn narrower than it was).
  function bandSteps(samples, target) {
    const size = Math.max(1, samples.length / target);
    const steps = [];
    for (let from = 0; from < samples.length;) {
      const to = Math.min(samples.length, Math.max(from + 1, Math.floor(from + size)));
      let stop = null;
      let warn = null;
      for (let i = from; i < to; i++) {
        if (isValue(samples[i].stop)) stop = stop === null ? samples[i].stop : Math.max(stop, samples[i].stop);
        if (isValue(samples[i].warn)) warn = warn === null ? samples[i].warn : Math.max(warn, samples[i].warn);
      }
      const t1 = to < samples.length ? samples[to].t : samples[samples.length - 1].t;
      steps.push({ t0: samples[from].t, t1, stop, warn });
      from = to;
    }
    return steps;
  }

  // A filled band between lower(step) and upper(step), broken where either is missing.
  function bandPath(steps, lower, upper, x, y) {
    let d = '';
    let run = [];
    const flush = () => {
      if (run.length === 0) return;
      d += 'M' + x(run[0].t0).toFixed(1) + ' ' + y(upper(run[0])).toFixed(1);
      for (const s of run) d += 'L' + x(s.t0).toFixed(1) + ' ' + y(upper(s)).toFixed(1) +
        'L' + x(s.t1).toFixed(1) + ' ' + y(upper(s)).toFixed(1);
      for (const s of run.slice().reverse()) d += 'L' + x(s.t1).toFixed(1) + ' ' + y(lower(s)).toFixed(1) +
        'L' + x(s.t0).toFixed(1) + ' ' + y(lower(s)).toFixed(1);
      d += 'Z';
      run = [];
    };
    for (const s of steps) {
      if (isValue(lower(s)) && isValue(upper(s))) run.push(s);
      else flush();
    }
    flush();
    return d;
  }

  // samples: [{t, gap, speed, stop, warn}] (t seconds from the start; stop and warn the distances
  // in force, mm, or null), events: [{t, kind, title}], opts: {speedLabel, speedScale, emptyText}.
  // Returns the samples drawn and whether the stop and warn band could be drawn.
  function timeline(svg, samples, events, opts) {
    if (samples.length === 0) {
      empty(svg, opts.emptyText || _('no timeline recorded'), timelineHeight);
      return { shown: [], bands: false };
    }
    const shown = decimateMinGap(samples, TIMELINE_POINTS);
    const steps = bandSteps(samples, TIMELINE_POINTS);
    const bands = steps.some((s) => isValue(s.stop));
    const tEnd = Math.max(samples[samples.length - 1].t, 1);
    const gaps = shown.map((s) => s.gap).filter(isValue);
    const warns = steps.map((s) => s.warn).filter(isValue);
    const scaleSpeed = opts.speedScale || 1;
    responsive(svg, () => {
      svg.replaceChildren();
      const b = fit(svg, timelineHeight);
      const x = linear(0, tEnd, b.x0, b.x1);
      const yCount = Math.max(2, Math.floor((b.y0 - b.y1) / Y_TICK_PX));
      const gapMax = niceMax(Math.max(0, ...gaps, ...warns), 500, yCount);
      const yGap = linear(0, gapMax, b.y0, b.y1);
      const speedMax = niceMax(Math.max(...shown.map((s) => (s.speed || 0) * scaleSpeed)), 1, yCount);
      const ySpeed = linear(0, speedMax, b.y0, b.y1);
      if (bands) {
        svg.appendChild(node(svg, 'path', { d: bandPath(steps, () => 0, (s) => s.stop, x, yGap),
          class: 'band band-stop' }, undefined));
        svg.appendChild(node(svg, 'path', { d: bandPath(steps, (s) => s.stop, (s) => s.warn, x, yGap),
          class: 'band band-warn' }));
      }
      yAxis(svg, b, yGap, niceTicks(0, gapMax, yCount), 'left', _('gap mm'), 'gap');
      yAxis(svg, b, ySpeed, niceTicks(0, speedMax, yCount), 'right', opts.speedLabel || 'km/h', 'speed');
      const ticks = timeTicks(tEnd, maxTicks(b.x1 - b.x0, TIME_LABEL_PX));
      xAxis(svg, b, x, ticks.map((t) => ({ at: t, text: mmss(t) })));
      for (const e of events) {
        if (!isFinite(e.t) || e.t < 0 || e.t > tEnd) continue;
        const mark = node(svg, 'line', { x1: x(e.t), y1: b.y0, x2: x(e.t), y2: b.y1, class: 'event-mark ' + e.kind });
        mark.appendChild(node(svg, 'title', {}, mmss(e.t) + ' ' + e.title));
        svg.appendChild(mark);
      }
      svg.appendChild(node(svg, 'path', { d: pathOf(shown.map((s) => ({ x: s.t, y: s.speed * scaleSpeed })), x, ySpeed),
        class: 'series speed' }));
      svg.appendChild(node(svg, 'path', { d: pathOf(shown.map((s) => ({ x: s.t, y: s.gap })), x, yGap),
        class: 'series gap' }));
    });
    return { shown, bands };
  }

  return { dated, timeline, decimateMinGap, empty, niceTicks, mmss, maxTicks, timeTicks, sessionOrder,
    dateLabelIndexes, bandSteps };
})();
