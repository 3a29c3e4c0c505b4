/* duly dashboard: live refresh and the throughput chart. No framework, no build step.
   Everything from the server is inserted with textContent / setAttribute, never as HTML. */
(function () {
  "use strict";

  var body = document.body;
  var every = Math.max(1, Number(body.dataset.refresh) || 2) * 1000;
  var SVG = "http://www.w3.org/2000/svg";
  var FINAL = ["succeeded", "failed", "cancelled", "expired"];

  // Forms that ask before they act (delete, pause, cancel).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname)); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      });
  }

  function setLive(ok) {
    var el = document.getElementById("live");
    if (!el) { return; }
    el.classList.toggle("off", !ok);
    el.textContent = ok ? "live" : "offline";
  }

  function poll(step) {
    var tick = function () {
      if (document.hidden) { window.setTimeout(tick, every); return; }
      step().then(function () { setLive(true); }, function () { setLive(false); })
        .then(function () { window.setTimeout(tick, every); });
    };
    window.setTimeout(tick, every);
  }

  function fmt(n, estimated) {
    return (estimated ? "~" : "") + Number(n).toLocaleString("en-US");
  }

  // As the server writes durations (duly.core.durations.format_duration): 250ms, 1m5s, 2h3m4s.
  function duration(seconds) {
    if (seconds < 1) { return Math.round(seconds * 1000) + "ms"; }
    var rest = Math.round(seconds), out = "";
    [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]].forEach(function (unit) {
      if (rest >= unit[1]) { out += Math.floor(rest / unit[1]) + unit[0]; rest %= unit[1]; }
    });
    return out || "0s";
  }

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function hhmm(date) {
    return date.toISOString().slice(11, 16);
  }

  // Stacked bars of jobs ended per minute, by final state.
  function drawChart(svg, tp) {
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var W = 1000, H = 200, left = 40, bottom = 20, top = 8;
    var n = tp.minutes, start = new Date(tp.start);
    var totals = [];
    for (var i = 0; i < n; i++) {
      totals.push(FINAL.reduce(function (sum, s) { return sum + ((tp.series[s] || [])[i] || 0); }, 0));
    }
    var max = Math.max(1, Math.max.apply(null, totals));
    var plotH = H - bottom - top, step = (W - left) / n, barW = Math.max(1, step * 0.8);
    svg.appendChild(el("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, "class": "axis" }));
    svg.appendChild(el("text", { x: left - 6, y: top + 8, "text-anchor": "end" }, String(max)));
    svg.appendChild(el("text", { x: left - 6, y: H - bottom, "text-anchor": "end" }, "0"));
    for (var m = 0; m < n; m++) {
      var y = H - bottom, x = left + m * step + (step - barW) / 2;
      var minute = new Date(start.getTime() + m * 60000);
      FINAL.forEach(function (s) {
        var v = (tp.series[s] || [])[m] || 0;
        if (!v) { return; }
        var h = v / max * plotH;
        y -= h;
        var rect = el("rect", { x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: h.toFixed(1), "class": "bar-" + s });
        rect.appendChild(el("title", {}, hhmm(minute) + " UTC: " + v + " " + s));
        svg.appendChild(rect);
      });
      if (m % 5 === 0 || m === n - 1) {
        svg.appendChild(el("text", { x: (left + m * step + step / 2).toFixed(1), y: H - 6, "text-anchor": "middle" }, hhmm(minute)));
      }
    }
    svg.setAttribute("data-total", String(totals.reduce(function (a, b) { return a + b; }, 0)));
  }

  function overview() {
    var data = JSON.parse(document.getElementById("overview-data").textContent);
    var svg = document.getElementById("chart");
    drawChart(svg, data.throughput);
    var known = data.queues.map(function (q) { return q.queue; }).join("\n");
    poll(function () {
      return getJSON("/api/overview?minutes=" + data.throughput.minutes).then(function (d) {
        var names = d.queues.map(function (q) { return q.queue; }).join("\n");
        var paused = d.queues.map(function (q) { return q.paused; }).join();
        if (names !== known || paused !== data.queues.map(function (q) { return q.paused; }).join()) {
          window.location.reload();  // queues came, went, paused or resumed: redraw the table
          return;
        }
        document.querySelectorAll("[data-total]").forEach(function (node) {
          var s = node.getAttribute("data-total");
          if (s in d.totals) { node.textContent = fmt(d.totals[s], d.estimated.indexOf(s) >= 0); }
        });
        document.getElementById("workers-alive").textContent = String(d.workers.alive);
        var rows = document.querySelectorAll("#queues tbody tr");
        rows.forEach(function (row) {
          var q = d.queues.filter(function (x) { return x.queue === row.dataset.queue; })[0];
          if (!q) { return; }
          row.querySelectorAll("td[data-state]").forEach(function (td) {
            var s = td.dataset.state, a = td.querySelector("a");
            (a || td).textContent = fmt(q.counts[s], q.estimated.indexOf(s) >= 0);
          });
          var lat = row.querySelector("td[data-latency]");
          if (lat) { lat.textContent = q.latency_seconds ? duration(q.latency_seconds) : "-"; }
        });
        drawChart(svg, d.throughput);
        data = d;
      });
    });
  }

  function job() {
    var id = body.dataset.jobId, state = body.dataset.jobState;
    if (["scheduled", "queued", "running", "retrying"].indexOf(state) < 0) { return; }
    poll(function () {
      return getJSON("/api/jobs/" + encodeURIComponent(id)).then(function (d) {
        if (d.job.state !== state || d.attempts.length !== document.querySelectorAll(".attempt").length) {
          window.location.reload();
          return;
        }
        var bar = document.getElementById("job-progress");
        if (bar && d.job.progress_done !== null) {
          bar.value = d.job.progress_done;
          bar.max = d.job.progress_total || d.job.progress_done || 1;
          document.getElementById("job-progress-text").textContent =
            d.job.progress_done + (d.job.progress_total ? " / " + d.job.progress_total : "");
        } else if (!bar && d.job.progress_done !== null) {
          window.location.reload();
        }
      });
    });
  }

  function when(iso) {
    return iso ? String(iso).slice(0, 19).replace("T", " ") : "-";
  }

  function link(href, text) {
    var a = document.createElement("a");
    a.setAttribute("href", href);
    a.textContent = text;
    return a;
  }

  function cell(tr, content, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    (Array.isArray(content) ? content : [content]).forEach(function (c) {
      if (c === null || c === undefined) { return; }
      if (typeof c === "object") { td.appendChild(c); } else { td.appendChild(document.createTextNode(String(c))); }
    });
    tr.appendChild(td);
    return td;
  }

  function stateBadge(state) {
    var span = document.createElement("span");
    span.className = "state st-" + state;
    span.textContent = state;
    return span;
  }

  // As Jinja's truncate(80) writes the last error in the template.
  function truncate(text, length) {
    if (text.length <= length + 5) { return text; }
    var cut = text.slice(0, length - 3), space = cut.lastIndexOf(" ");
    return (space > 0 ? cut.slice(0, space) : cut) + "...";
  }

  // The job list follows its filters live (a search text is not refreshed: it reads a
  // window of jobs per request, so it runs when asked).
  function jobs() {
    var params = new URLSearchParams(window.location.search);
    params.delete("msg");
    if (params.get("q")) { return; }
    poll(function () {
      return getJSON("/api/jobs?" + params.toString()).then(function (d) {
        var tbody = document.querySelector("#jobs tbody");
        var older = document.getElementById("older");
        if (!tbody || !d.jobs.length || Boolean(older) !== (d.next_before !== null)) {
          if (tbody || d.jobs.length) { window.location.reload(); }  // appeared, emptied, paging changed
          return;
        }
        var rows = document.createDocumentFragment();
        d.jobs.forEach(function (j) {
          var tr = document.createElement("tr");
          tr.dataset.jobId = String(j.id);
          cell(tr, link("/jobs/" + j.id, String(j.id)), "num");
          cell(tr, stateBadge(j.state));
          cell(tr, j.queue);
          cell(tr, link("/jobs/" + j.id, j.task));
          cell(tr, j.attempt + "/" + j.max_attempts, "num");
          cell(tr, when(j.run_at));
          var bar = null;
          if (j.progress_done !== null) {
            bar = document.createElement("progress");
            bar.value = j.progress_done;
            bar.max = j.progress_total || j.progress_done || 1;
          }
          cell(tr, bar);
          cell(tr, truncate(j.last_error || "", 80), "error");
          rows.appendChild(tr);
        });
        while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
        tbody.appendChild(rows);
        if (older) {
          var next = new URLSearchParams(params);
          next.set("before", String(d.next_before));
          older.setAttribute("href", "/jobs?" + next.toString());
        }
      });
    });
  }

  // Triggers: next and last fire times, missed slots and the last job follow live; a
  // trigger added, removed, paused or resumed reloads the page (its buttons change).
  function triggers() {
    var shape = function (list) {
      return list.map(function (t) { return t.name + "\u0000" + t.paused; }).join("\n");
    };
    var shown = Array.prototype.map.call(document.querySelectorAll("#triggers tbody tr"), function (tr) {
      return { name: tr.dataset.trigger, paused: tr.dataset.paused === "true" };
    });
    poll(function () {
      return getJSON("/api/triggers").then(function (d) {
        if (shape(d.triggers) !== shape(shown)) { window.location.reload(); return; }
        d.triggers.forEach(function (t) {
          var tr = document.querySelector('#triggers tr[data-trigger="' + CSS.escape(t.name) + '"]');
          if (!tr) { return; }
          tr.querySelector('[data-field="next_fire_at"]').textContent = when(t.next_fire_at);
          tr.querySelector('[data-field="missed"]').textContent = String(t.missed);
          tr.querySelector('[data-field="last_fire_at"]').textContent = when(t.last_fire_at);
          var last = tr.querySelector('[data-field="last_job_id"]');
          while (last.firstChild) { last.removeChild(last.firstChild); }
          last.appendChild(t.last_job_id === null ? document.createTextNode("-") : link("/jobs/" + t.last_job_id, "#" + t.last_job_id));
        });
      });
    });
  }

  function workers() {
    poll(function () {
      return getJSON("/api/workers").then(function (list) {
        var tbody = document.querySelector("#workers tbody");
        if (!tbody) { return; }
        while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
        list.forEach(function (w) {
          var tr = document.createElement("tr");
          var alive = document.createElement("span");
          alive.className = "state " + (w.alive ? "st-succeeded" : "st-failed");
          alive.textContent = w.alive ? "alive" : "dead";
          var ids = [];
          (w.job_ids || []).forEach(function (id, i) {
            if (i) { ids.push(" "); }
            ids.push(link("/jobs/" + id, "#" + id));
          });
          cell(tr, w.id);
          cell(tr, w.hostname);
          cell(tr, w.pid, "num");
          cell(tr, w.queues ? w.queues.join(", ") : "all");
          cell(tr, w.running, "num");
          cell(tr, ids, "jobs");
          cell(tr, w.concurrency, "num");
          cell(tr, alive);
          cell(tr, when(w.last_seen_at));
          cell(tr, when(w.started_at));
          tbody.appendChild(tr);
        });
      });
    });
  }

  var pages = { overview: overview, job: job, jobs: jobs, workers: workers, triggers: triggers };
  if (pages[body.dataset.page]) { pages[body.dataset.page](); }
})();
