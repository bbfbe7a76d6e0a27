// JSON patch for the live page: RFC 6902 (add, remove, replace, move, copy, test) plus
// "append" (a string suffix), with the rules of the Python applier
// (mistral_workflows/core/patch.py): the same ops succeed, the same ops fail. Keys are
// only ever own properties, so "__proto__", "constructor" or "prototype" are keys like any
// other and never reach an object's prototype. tests/core/patch_cases.json is the corpus
// both appliers are tested with.
"use strict";

const hasOwn = (node, key) => Object.prototype.hasOwnProperty.call(node, key);

class PatchError extends Error {}

function typeName(value) {
  if (value === null) return "NoneType";
  if (Array.isArray(value)) return "list";
  switch (typeof value) {
    case "string": return "str";
    case "boolean": return "bool";
    case "number": return Number.isInteger(value) ? "int" : "float";
    case "object": return "dict";
    default: return typeof value;
  }
}

const isDict = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

function member(op, name, kind) {
  if (!hasOwn(op, name)) throw new PatchError("missing '" + name + "'");
  const value = op[name];
  if (kind === "str" && typeof value !== "string") {
    throw new PatchError("'" + name + "' must be str, found " + typeName(value));
  }
  return value;
}

function tokensOf(pointer) {
  if (pointer === "") return [];
  if (pointer[0] !== "/") {
    throw new PatchError(JSON.stringify(pointer) + " is not a JSON pointer: it must be '' or start with '/'");
  }
  return pointer.slice(1).split("/").map((token) => {
    if (/~(?![01])/.test(token)) {
      throw new PatchError("invalid pointer token " + JSON.stringify(token) + ": '~' must be followed by 0 or 1");
    }
    return token.replace(/~1/g, "/").replace(/~0/g, "~");
  });
}

function indexOf(token, size, endOk) {
  if (token === "-") {
    if (endOk) return size;
    throw new PatchError("'-' (past the end of the list) only works with 'add'");
  }
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(JSON.stringify(token) + " is not a list index");
  const index = Number(token);
  if (index > size || (index === size && !endOk)) {
    throw new PatchError("index " + index + " is out of range for a list of " + size + " items");
  }
  return index;
}

function child(node, token) {
  if (Array.isArray(node)) return node[indexOf(token, node.length, false)];
  if (isDict(node)) {
    if (!hasOwn(node, token)) throw new PatchError("no member " + JSON.stringify(token));
    return node[token];
  }
  throw new PatchError("cannot look up " + JSON.stringify(token) + " in " + typeName(node));
}

// The container holding the value at `tokens` (not the root), and its key there.
function parentOf(doc, tokens) {
  let node = doc;
  for (const token of tokens.slice(0, -1)) node = child(node, token);
  const key = tokens[tokens.length - 1];
  if (!Array.isArray(node) && !isDict(node)) {
    throw new PatchError("cannot look up " + JSON.stringify(key) + " in " + typeName(node));
  }
  return [node, key];
}

function getAt(doc, tokens) {
  if (tokens.length === 0) return doc;
  const [parent, key] = parentOf(doc, tokens);
  return child(parent, key);
}

// An own, plain data property, whatever the key: assigning to "__proto__" would set the
// object's prototype instead.
function setOwn(node, key, value) {
  Object.defineProperty(node, key, { value, writable: true, enumerable: true, configurable: true });
}

function addAt(doc, tokens, value) {
  if (tokens.length === 0) return value;
  const [parent, key] = parentOf(doc, tokens);
  if (Array.isArray(parent)) parent.splice(indexOf(key, parent.length, true), 0, value);
  else setOwn(parent, key, value);
  return doc;
}

function removeAt(doc, tokens) {
  if (tokens.length === 0) throw new PatchError("cannot remove the root");
  const [parent, key] = parentOf(doc, tokens);
  if (Array.isArray(parent)) return parent.splice(indexOf(key, parent.length, false), 1)[0];
  if (!hasOwn(parent, key)) throw new PatchError("no member " + JSON.stringify(key) + " to remove");
  const old = parent[key];
  delete parent[key];
  return old;
}

// A deep copy made of own properties only (structuredClone would do, but this one is
// plainly safe with every key).
function copyOf(value) {
  if (Array.isArray(value)) return value.map(copyOf);
  if (isDict(value)) {
    const out = {};
    for (const key of Object.keys(value)) setOwn(out, key, copyOf(value[key]));
    return out;
  }
  return value;
}

// Exact JSON equality, numbers by value (RFC 6902's "test"); true is not 1.
function sameJson(a, b) {
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (isDict(a)) {
    if (!isDict(b)) return false;
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    return keys.every((key) => hasOwn(b, key) && sameJson(a[key], b[key]));
  }
  return typeof a === typeof b && a === b;
}

function checkStr(text) {
  if (typeof text !== "string") throw new PatchError("'append' needs a string target, found " + typeName(text));
}

const OPS = {
  add(doc, op) {
    return addAt(doc, tokensOf(member(op, "path", "str")), copyOf(member(op, "value")));
  },
  remove(doc, op) {
    removeAt(doc, tokensOf(member(op, "path", "str")));
    return doc;
  },
  replace(doc, op) {
    const tokens = tokensOf(member(op, "path", "str"));
    const value = copyOf(member(op, "value"));
    if (tokens.length === 0) return value;
    const [parent, key] = parentOf(doc, tokens);
    if (Array.isArray(parent)) {
      parent[indexOf(key, parent.length, false)] = value;
    } else {
      if (!hasOwn(parent, key)) throw new PatchError("no member " + JSON.stringify(key) + " to replace");
      setOwn(parent, key, value);
    }
    return doc;
  },
  move(doc, op) {
    const source = member(op, "from", "str");
    const target = member(op, "path", "str");
    if (target === source) {
      getAt(doc, tokensOf(source)); // must exist; nothing to move
      return doc;
    }
    if (target.startsWith(source + "/")) throw new PatchError("cannot move a value into one of its own children");
    const value = removeAt(doc, tokensOf(source));
    return addAt(doc, tokensOf(target), value);
  },
  copy(doc, op) {
    const value = copyOf(getAt(doc, tokensOf(member(op, "from", "str"))));
    return addAt(doc, tokensOf(member(op, "path", "str")), value);
  },
  test(doc, op) {
    const actual = getAt(doc, tokensOf(member(op, "path", "str")));
    const expected = member(op, "value");
    if (!sameJson(actual, expected)) {
      throw new PatchError("test failed: the value is " + JSON.stringify(actual) + ", not " + JSON.stringify(expected));
    }
    return doc;
  },
  append(doc, op) {
    const tokens = tokensOf(member(op, "path", "str"));
    const suffix = member(op, "value", "str");
    if (tokens.length === 0) {
      checkStr(doc);
      return doc + suffix;
    }
    const [parent, key] = parentOf(doc, tokens);
    const at = Array.isArray(parent) ? indexOf(key, parent.length, false) : key;
    const text = child(parent, key);
    checkStr(text);
    if (Array.isArray(parent)) parent[at] = text + suffix;
    else setOwn(parent, at, text + suffix);
    return doc;
  },
};

function describe(op) {
  if (!isDict(op)) return JSON.stringify(op);
  const text = JSON.stringify(op.op) + " at " + JSON.stringify(op.path);
  return hasOwn(op, "from") ? text + " from " + JSON.stringify(op.from) : text;
}

// Apply `ops` to `doc` in order, in place where possible; returns the new root. Throws a
// PatchError naming the failing op (the ops before it stay applied), as Python's `apply`.
function applyPatch(doc, ops) {
  if (!Array.isArray(ops)) throw new PatchError("a patch must be a list of ops, found " + typeName(ops));
  ops.forEach((op, index) => {
    try {
      if (!isDict(op)) throw new PatchError("an op must be a mapping, found " + typeName(op));
      const name = op.op;
      if (typeof name !== "string" || !hasOwn(OPS, name)) {
        throw new PatchError("unknown op " + JSON.stringify(name ?? null) + ": expected one of " + Object.keys(OPS).join(", "));
      }
      doc = OPS[name](doc, op);
    } catch (error) {
      if (!(error instanceof PatchError)) throw error;
      throw new PatchError("cannot apply op " + index + " (" + describe(op) + "): " + error.message);
    }
  });
  return doc;
}
