// Small inline-SVG charts, drawn here so that nothing comes from another site
// (the CSP allows our own scripts only). Positions are SVG attributes and
// looks are CSS classes in style.css: no style attributes, which the CSP forbids.
'use strict';

window.Charts = (function () {
  const DAY_S = 86400;
  // Room on top for the axis labels, above the highest tick.
  const MARGIN = { left: 52, right: 52, top: 28, bottom: 34 };
  // The timeline is drawn with about this many points, however long the session.
  const TIMELINE_POINTS = 1000;

  // ---- SVG building ----------------------------------------------------------------------

  function node(svg, tag, attrs, text) {
    // The SVG namespace is taken from the page's own <svg>, so no URL is written here.
    const n = document.createElementNS(svg.namespaceURI, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, typeof v === 'number' ? v.toFixed(1) : v);
    if (text !== undefined) n.textContent = String(text);
    return n;
  }

  function box(svg) {
    const vb = svg.viewBox.baseVal;
    const width = vb && vb.width ? vb.width : 640;
    const height = vb && vb.height ? vb.height : 240;
    return { width, height, x0: MARGIN.left, x1: width - MARGIN.right, y0: height - MARGIN.bottom, y1: MARGIN.top };
  }

  function linear(d0, d1, r0, r1) {
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
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

  function niceMax(value, floor) {
    const top = Math.max(value || 0, floor);
    const ticks = niceTicks(0, top, 5);
    const last = ticks[ticks.length - 1];
    return last >= top ? last : last + (ticks[1] - ticks[0] || top);
  }

  function empty(svg, message) {
    svg.replaceChildren();
    const b = box(svg);
    svg.appendChild(node(svg, 'text', { x: b.width / 2, y: b.height / 2, class: 'chart-empty' }, message));
  }

  function yAxis(svg, b, y, ticks, side, label, cls) {
    const x = side === 'left' ? b.x0 : b.x1;
    svg.appendChild(node(svg, 'line', { x1: x, y1: b.y0, x2: x, y2: b.y1, class: 'axis' }));
    for (const t of ticks) {
      if (side === 'left') {
        svg.appendChild(node(svg, 'line', { x1: b.x0, y1: y(t), x2: b.x1, y2: y(t), class: 'grid' }));
      }
      svg.appendChild(node(svg, 'text', { x: side === 'left' ? x - 6 : x + 6, y: y(t) + 4,
        class: 'tick ' + (side === 'left' ? 'tick-left' : 'tick-right') + (cls ? ' ' + cls : '') }, t));
    }
    if (label) {
      svg.appendChild(node(svg, 'text', { x: side === 'left' ? 4 : b.width - 4, y: 14,
        class: 'axis-label ' + (side === 'left' ? 'tick-start' : 'tick-end') + (cls ? ' ' + cls : '') }, label));
    }
  }

  function xAxis(svg, b, x, ticks, format) {
    svg.appendChild(node(svg, 'line', { x1: b.x0, y1: b.y0, x2: b.x1, y2: b.y0, class: 'axis' }));
    for (const t of ticks) {
      svg.appendChild(node(svg, 'line', { x1: x(t), y1: b.y0, x2: x(t), y2: b.y0 + 4, class: 'axis' }));
      svg.appendChild(node(svg, 'text', { x: x(t), y: b.y0 + 18, class: 'tick tick-middle' }, format(t)));
    }
  }

  // Lines broken where a value is missing (null): no line is drawn across a gap in the data.
  function pathOf(points, x, y) {
    let d = '';
    let pen = false;
    for (const p of points) {
      if (p.y === null || p.y === undefined || !isFinite(p.y)) {
        pen = false;
        continue;
      }
      d += (pen ? 'L' : 'M') + x(p.x).toFixed(1) + ' ' + y(p.y).toFixed(1);
      pen = true;
    }
    return d;
  }

  // ---- dates ---------------------------------------------------------------------------

  function dateTicks(t0, t1) {
    const spanDays = (t1 - t0) / DAY_S;
    const stepDays = [1, 2, 7, 14, 28, 56, 91, 182].find((s) => spanDays / s <= 6) || 364;
    const start = new Date(t0 * 1000);
    start.setHours(0, 0, 0, 0);
    const ticks = [];
    for (let d = new Date(start); d.getTime() / 1000 <= t1; d.setDate(d.getDate() + stepDays)) {
      if (d.getTime() / 1000 >= t0) ticks.push(d.getTime() / 1000);
    }
    return ticks;
  }

  function dateLabel(t) {
    const d = new Date(t * 1000);
    return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  }

  // ---- charts over the sessions ----------------------------------------------------------

  // series: [{label, cls, points: [{x: unix s, y, title, flag}]}], opts: {yMax, yFloor, yLabel}
  function dated(svg, series, opts) {
    const all = series.flatMap((s) => s.points).filter((p) => p.y !== null && p.y !== undefined && isFinite(p.y));
    if (all.length === 0) {
      empty(svg, opts.emptyText || 'no sessions yet');
      return;
    }
    svg.replaceChildren();
    const b = box(svg);
    let t0 = Math.min(...all.map((p) => p.x));
    let t1 = Math.max(...all.map((p) => p.x));
    // Half a day either side, so the first and last sessions are not drawn on the axes.
    t0 -= DAY_S / 2;
    t1 += DAY_S / 2;
    const x = linear(t0, t1, b.x0 + 6, b.x1 - 6);
    const yMax = opts.yMax !== undefined ? opts.yMax : niceMax(Math.max(...all.map((p) => p.y)), opts.yFloor || 1);
    const y = linear(0, yMax, b.y0, b.y1);
    yAxis(svg, b, y, niceTicks(0, yMax, 5), 'left', opts.yLabel);
    xAxis(svg, b, x, dateTicks(t0, t1), dateLabel);
    for (const s of series) {
      const sorted = s.points.slice().sort((p, q) => p.x - q.x);
      svg.appendChild(node(svg, 'path', { d: pathOf(sorted, x, y), class: 'series ' + s.cls }));
      for (const p of sorted) {
        if (p.y === null || p.y === undefined || !isFinite(p.y)) continue;
        const dot = node(svg, 'circle', { cx: x(p.x), cy: y(p.y), r: p.flag ? 6 : 4,
          class: 'dot ' + s.cls + (p.flag ? ' flagged' : '') });
        dot.appendChild(node(svg, 'title', {}, p.title || (s.label + ': ' + p.y)));
        svg.appendChild(dot);
      }
    }
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

  // samples: [{t, gap, speed}], events: [{t, kind, title}], opts: {speedLabel, speedScale}
  function timeline(svg, samples, events, opts) {
    if (samples.length === 0) {
      empty(svg, opts.emptyText || 'no timeline recorded');
      return [];
    }
    const shown = decimateMinGap(samples, TIMELINE_POINTS);
    svg.replaceChildren();
    const b = box(svg);
    const tEnd = Math.max(samples[samples.length - 1].t, 1);
    const x = linear(0, tEnd, b.x0, b.x1);
    const gaps = shown.map((s) => s.gap).filter((g) => g !== null && isFinite(g));
    const gapMax = niceMax(gaps.length ? Math.max(...gaps) : 0, 500);
    const yGap = linear(0, gapMax, b.y0, b.y1);
    const scaleSpeed = opts.speedScale || 1;
    const speedMax = niceMax(Math.max(...shown.map((s) => (s.speed || 0) * scaleSpeed)), 1);
    const ySpeed = linear(0, speedMax, b.y0, b.y1);
    yAxis(svg, b, yGap, niceTicks(0, gapMax, 5), 'left', 'gap mm', 'gap');
    yAxis(svg, b, ySpeed, niceTicks(0, speedMax, 5), 'right', opts.speedLabel || 'km/h', 'speed');
    const minuteStep = niceTicks(0, tEnd / 60, 8);
    xAxis(svg, b, x, minuteStep.map((m) => m * 60), (t) => (Math.round((t / 60) * 100) / 100) + ' min');
    for (const e of events) {
      if (!isFinite(e.t) || e.t < 0 || e.t > tEnd) continue;
      const mark = node(svg, 'line', { x1: x(e.t), y1: b.y0, x2: x(e.t), y2: b.y1, class: 'event-mark ' + e.kind });
      mark.appendChild(node(svg, 'title', {}, e.title));
      svg.appendChild(mark);
    }
    svg.appendChild(node(svg, 'path', { d: pathOf(shown.map((s) => ({ x: s.t, y: s.speed * scaleSpeed })), x, ySpeed),
      class: 'series speed' }));
    svg.appendChild(node(svg, 'path', { d: pathOf(shown.map((s) => ({ x: s.t, y: s.gap })), x, yGap),
      class: 'series gap' }));
    return shown;
  }

  return { dated, timeline, decimateMinGap, empty, niceTicks };
})();
