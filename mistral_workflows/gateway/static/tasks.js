// How the live page draws the well-known task states: Mistral's todo lists (`todo_list`)
// and working tasks (`working`, with their tool UI state), and chat turns (text, thinking,
// tool calls). The same rules as the terminal's human view (consumer/_shapes.py).
// drawShape(node, task) appends the drawing to `node` and returns true, or returns false
// for any other state. Uses el() and badge() of live.js, called only once both are loaded.
"use strict";

const TODO_MARKS = { todo: "☐", in_progress: "◔", done: "☑", stopped: "⚠" };

function shortJson(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function drawTodoList(task) {
  const ended = task.status !== "running";
  const list = el("ul", { className: "todo-list" });
  for (const item of task.state.items) {
    // A step still in progress when its list ended did not finish.
    const status = ended && item.status === "in_progress" ? "stopped" : String(item.status);
    const row = el("li", { className: "todo-item" },
      el("span", { className: "mark", textContent: TODO_MARKS[status] || "?" }),
      el("span", { className: "todo-title", textContent: String(item.title ?? "") }),
      item.description ? el("span", { className: "todo-description", textContent: String(item.description) }) : null);
    row.dataset.status = status;
    row.dataset.itemId = String(item.id ?? "");
    list.append(row);
  }
  return list;
}

function toolResult(tool) {
  const result = isObject(tool.result) ? tool.result : {};
  const detail = result.status === "success" ? (result.value ?? result.output)
    : result.status === "failed" ? result.error : undefined;
  return [String(result.status ?? "?"), detail];
}

function drawToolUI(tool) {
  const node = el("div", { className: "tool-ui" });
  node.dataset.type = String(tool.type);
  if (tool.type === "file") {
    const ops = Array.isArray(tool.operations) ? tool.operations : [];
    for (const op of ops) {
      node.append(el("div", { className: "file-op", textContent: `${op.type} ${op.uri}` }));
    }
    return node;
  }
  const call = tool.type === "command" ? `$ ${tool.command}`
    : `${tool.name}(${JSON.stringify(tool.arguments ?? {})})`;
  const [status, detail] = toolResult(tool);
  node.dataset.status = status;
  node.append(el("code", { className: "tool-call-text", textContent: call }), " ", badge(status));
  if (detail !== undefined) node.append(el("pre", { className: "tool-result", textContent: shortJson(detail) }));
  return node;
}

function drawWorking(task) {
  const s = task.state;
  const node = el("div", { className: "working" },
    el("div", { className: "working-title", textContent: `${s.type || "tool"}: ${s.title}` }),
    s.content ? el("div", { className: "working-content", textContent: String(s.content) }) : null);
  node.dataset.kind = String(s.type || "tool");
  if (isObject(s.toolUIState)) node.append(drawToolUI(s.toolUIState));
  return node;
}

function isChat(state) {
  if (!isObject(state)) return false;
  if (Array.isArray(state.tool_calls)) return true;
  return "content" in state && ["reasoning", "thinking", "finish_reason"].some((k) => k in state);
}

function drawToolCall(call) {
  const fn = isObject(call.function) ? call.function : {};
  const name = call.name || fn.name || "?";
  const args = call.arguments ?? fn.arguments ?? "";
  const row = el("li", { className: "tool-call" },
    el("code", { className: "tool-call-text", textContent: `${name}(${shortJson(args)})` }));
  if (call.status) {
    row.dataset.status = String(call.status);
    row.append(" ", badge(String(call.status)));
  }
  for (const key of ["result", "error"]) {
    if (call[key] !== undefined && call[key] !== null) {
      row.append(el("pre", { className: "tool-result", textContent: shortJson(call[key]) }));
    }
  }
  return row;
}

function drawChat(task) {
  const s = task.state;
  const node = el("div", { className: "chat" });
  const thinking = typeof s.reasoning === "string" ? s.reasoning : s.thinking;
  if (typeof thinking === "string" && thinking) node.append(el("div", { className: "thinking", textContent: thinking }));
  if (typeof s.content === "string" && s.content) node.append(el("div", { className: "text", textContent: s.content }));
  const calls = Array.isArray(s.tool_calls) ? s.tool_calls.filter(isObject) : [];
  if (calls.length) node.append(el("ul", { className: "tool-calls" }, ...calls.map(drawToolCall)));
  if (s.finish_reason) node.append(el("div", { className: "finish", textContent: `finish: ${s.finish_reason}` }));
  return node;
}

function drawShape(node, task) {
  const s = task.state;
  if (task.type === "todo_list" && isObject(s) && Array.isArray(s.items) && s.items.every(isObject)) {
    node.append(drawTodoList(task));
  } else if (task.type === "working" && isObject(s) && typeof s.title === "string") {
    node.append(drawWorking(task));
  } else if (isChat(s)) {
    node.append(drawChat(task));
  } else {
    return false;
  }
  return true;
}
