// The live page: follows a workflow tree through the gateway's SSE stream, rebuilds each
// task's state from its patches and redraws on each animation frame. No build step.
"use strict";

const PREFIX = "/ui/executions/";
const rootId = decodeURIComponent(location.pathname.slice(PREFIX.length));
const token = new URLSearchParams(location.search).get("token");
const RETRY_MS = 2000;

const workflows = new Map(); // exec id -> {id, name, parent, status, activities, tasks}
let lastSeq = 0;
let source = null;
let drawQueued = false;
// What the page did, for debugging (and tests): the sequences it received and applied, in
// order, how many times its stream opened (the browser's own reconnections included), and
// the notices of a recreated stream.
window.liveView = { received: [], applied: [], opens: 0, gaps: [] };

// The JSON-patch applier (applyPatch, copyOf) is patch.js, loaded before this script.

// --- the tree ---------------------------------------------------------------------------

function workflowOf(data) {
  let wf = workflows.get(data.workflow_exec_id);
  if (!wf) {
    wf = { id: data.workflow_exec_id, name: data.workflow_name, parent: data.parent_workflow_exec_id,
           status: "running", activities: new Map(), tasks: new Map() };
    workflows.set(wf.id, wf);
  }
  return wf;
}

function activityOf(wf, id, name) {
  let act = wf.activities.get(id);
  if (!act) {
    act = { id, name, status: "running", attempt: 1, tasks: new Map() };
    wf.activities.set(id, act);
  }
  return act;
}

const WORKFLOW_STATUS = {
  WORKFLOW_EXECUTION_STARTED: "running", WORKFLOW_EXECUTION_COMPLETED: "completed",
  WORKFLOW_EXECUTION_FAILED: "failed", WORKFLOW_EXECUTION_CANCELED: "canceled",
  WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued",
};
const ACTIVITY_STATUS = {
  ACTIVITY_TASK_STARTED: "running", ACTIVITY_TASK_COMPLETED: "completed",
  ACTIVITY_TASK_RETRYING: "retrying", ACTIVITY_TASK_FAILED: "failed",
};
const TASK_STATUS = {
  CUSTOM_TASK_STARTED: "running", CUSTOM_TASK_IN_PROGRESS: "running",
  CUSTOM_TASK_COMPLETED: "completed", CUSTOM_TASK_FAILED: "failed",
  CUSTOM_TASK_CANCELED: "canceled", CUSTOM_TASK_TIMED_OUT: "timed_out",
};

function apply(envelope) {
  const data = envelope.data;
  const attrs = data.attributes || {};
  const wf = workflowOf(data);
  const kind = data.event_type;
  if (kind in WORKFLOW_STATUS) {
    wf.status = WORKFLOW_STATUS[kind];
    wf.name = data.workflow_name;
  } else if (kind in ACTIVITY_STATUS) {
    const act = activityOf(wf, attrs.task_id, attrs.activity_name);
    act.status = ACTIVITY_STATUS[kind];
    if (attrs.attempt) act.attempt = Math.max(act.attempt, attrs.attempt);
  } else if (kind in TASK_STATUS) {
    applyTask(envelope, wf, kind, attrs);
  }
}

function applyTask(envelope, wf, kind, attrs) {
  const ctx = envelope.activity_context;
  const owner = ctx ? activityOf(wf, ctx.activity_id, ctx.activity_name) : wf;
  const attempt = ctx ? ctx.attempt : 1;
  let task = owner.tasks.get(attrs.custom_task_id);
  if (!task || attempt > task.attempt) {
    task = { id: attrs.custom_task_id, type: attrs.custom_task_type, attempt, seq: -1,
             state: null, status: "running", failure: null };
    owner.tasks.set(task.id, task);
  }
  if (attempt < task.attempt) return; // A late event of an older attempt.
  const seq = attrs.task_sequence;
  if (seq !== undefined && seq !== null) {
    if (seq <= task.seq) return; // Already applied.
    task.seq = seq;
  }
  const payload = attrs.payload;
  if (payload && payload.type === "json") task.state = copyOf(payload.value);
  else if (payload && payload.type === "json_patch") task.state = applyPatch(task.state, payload.value);
  task.status = TASK_STATUS[kind];
  if (attrs.failure) task.failure = attrs.failure.message;
  if (attrs.reason) task.failure = attrs.reason;
}

// --- drawing ----------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) if (child !== null) node.append(child);
  return node;
}

function badge(status) {
  const node = el("span", { className: "status", textContent: status });
  node.dataset.status = status;
  return node;
}

function textOf(state) {
  if (!state || typeof state !== "object") return null;
  if (Array.isArray(state.tokens) && state.tokens.every((t) => typeof t === "string")) {
    return state.tokens.join("");
  }
  return typeof state.text === "string" ? state.text : null;
}

const PROGRESS_KEYS = [["progress_idx", "progress_total"], ["progress", "total"],
                       ["done", "total"], ["current", "total"]];

function progressOf(state) {
  if (!state || typeof state !== "object") return null;
  for (const [done, total] of PROGRESS_KEYS) {
    if (typeof state[done] === "number" && typeof state[total] === "number" && state[total] > 0) {
      return [state[done], state[total]];
    }
  }
  return null;
}

function drawTask(task) {
  const node = el("div", { className: "task" },
    el("div", { className: "title" }, el("span", { className: "name", textContent: task.type }),
       badge(task.status), task.attempt > 1 ? `attempt ${task.attempt}` : null));
  node.dataset.taskId = task.id;
  node.dataset.taskType = task.type;
  if (drawShape(node, task)) { // tasks.js: todo lists, working tasks, chat turns
    if (task.failure) node.append(el("div", { className: "failure", textContent: task.failure }));
    return node;
  }
  const text = textOf(task.state);
  const progress = progressOf(task.state);
  if (text !== null) node.append(el("div", { className: "text", textContent: text }));
  if (progress !== null) {
    const [done, total] = progress;
    const bar = el("div", { className: "bar" }, el("div"));
    bar.firstChild.style.width = `${Math.min(100, (100 * done) / total)}%`;
    const label = el("span", { className: "progress-label", textContent: ` ${done} / ${total}` });
    node.append(el("div", { className: "progress" }, bar, label));
  }
  if (text === null && progress === null && task.state !== null) {
    node.append(el("pre", { className: "json", textContent: JSON.stringify(task.state, null, 1) }));
  }
  if (task.failure) node.append(el("div", { className: "failure", textContent: task.failure }));
  return node;
}

function drawWorkflow(wf) {
  const node = el("section", { className: "workflow" },
    el("div", { className: "title" }, el("span", { className: "name", textContent: wf.name }),
       el("span", { className: "id", textContent: wf.id }), badge(wf.status)));
  node.dataset.execId = wf.id;
  // The workflow's own tasks (a plan, a todo list) first, above the activities' work.
  for (const task of wf.tasks.values()) node.append(drawTask(task));
  for (const act of wf.activities.values()) {
    const a = el("div", { className: "activity" },
      el("div", { className: "title" }, el("span", { className: "name", textContent: act.name }),
         badge(act.status), act.attempt > 1 ? `attempt ${act.attempt}` : null));
    a.dataset.activityId = act.id;
    for (const task of act.tasks.values()) a.append(drawTask(task));
    node.append(a);
  }
  for (const child of workflows.values()) {
    if (child.parent === wf.id && child.id !== wf.id) node.append(drawWorkflow(child));
  }
  return node;
}

function draw() {
  drawQueued = false;
  const tree = document.getElementById("tree");
  const roots = [...workflows.values()].filter((wf) => !workflows.has(wf.parent) || wf.id === rootId);
  tree.replaceChildren(...roots.map(drawWorkflow));
  document.getElementById("last-seq").textContent = lastSeq ? `#${lastSeq}` : "";
}

function redraw() {
  if (!drawQueued) {
    drawQueued = true;
    requestAnimationFrame(draw);
  }
}

// --- the connection ---------------------------------------------------------------------

function setConnection(state, text) {
  const node = document.getElementById("connection");
  node.dataset.state = state;
  node.textContent = text;
}

function streamUrl() {
  const params = new URLSearchParams({ root_workflow_exec_id: rootId });
  if (lastSeq) params.set("last_event_id", String(lastSeq));
  if (token) params.set("access_token", token);
  return "/v1/workflows/events/stream?" + params;
}

function connect() {
  source = new EventSource(streamUrl());
  source.onopen = () => {
    window.liveView.opens += 1;
    setConnection("live", "live");
  };
  source.addEventListener("workflow.event", (message) => {
    const seq = Number(message.lastEventId);
    window.liveView.received.push(seq);
    if (seq <= lastSeq) return; // Already applied before a reconnection.
    lastSeq = seq;
    window.liveView.applied.push(seq);
    try {
      apply(JSON.parse(message.data));
    } catch (error) {
      console.error("event", seq, error);
    }
    redraw();
  });
  source.addEventListener("gap", (message) => {
    // The stream was recreated and its sequences restarted: what we applied came from the
    // old one, and the new one's events have lower sequences. Its id is our new position.
    const reason = JSON.parse(message.data).reason;
    window.liveView.gaps.push(reason);
    lastSeq = Number(message.lastEventId);
    setConnection("live", "live; notice: " + reason);
    redraw();
  });
  source.addEventListener("error", (message) => {
    if (message.data) {
      // The gateway ended the stream with a reason: start again after the last event.
      const reason = JSON.parse(message.data).reason;
      setConnection("error", "error: " + reason + "; retrying");
      reconnectLater();
    } else if (source.readyState === EventSource.CLOSED) {
      setConnection("reconnecting", "disconnected; retrying");
      reconnectLater();
    } else {
      // The browser reconnects by itself, sending Last-Event-ID.
      setConnection("reconnecting", "reconnecting…");
    }
  });
}

function reconnectLater() {
  source.close();
  setTimeout(connect, RETRY_MS);
}

document.getElementById("root-id").textContent = rootId;
document.title = "Workflow " + rootId;
connect();
