// LanTalk's browser client: the page around the core.
//
// Every protocol decision (Noise XX, the password check, pinning, rooms,
// history, files) is made by the core's client compiled to WebAssembly
// (web/src, lantalk_web.wasm). This file only moves bytes between it and
// WebSockets, keeps its timer, and shows what it says. Peer text enters the
// document only through textContent, never as markup.

const $ = (id) => document.getElementById(id);
const enc = new TextEncoder();
const dec = new TextDecoder();
const LOBBY = '#lobby';
const MAX_LINES = 2000; // per room, in the page
const BACKOFF = [1, 2, 4, 8, 15, 30]; // seconds between reconnection attempts
const MAX_FILE = 256 * 1024 * 1024; // the core's limit for a tab (files.rs)

let wasm = null;
let timer = 0;

// --- the core ---------------------------------------------------------------

function memory() { return new Uint8Array(wasm.memory.buffer); }

function put(bytes) {
  const at = wasm.lt_input(bytes.length);
  memory().set(bytes, at);
}

function clock() {
  const d = new Date();
  wasm.lt_clock(performance.now(), d.getTime(), d.getHours(), d.getMinutes());
}

function output(len) {
  const at = wasm.lt_output();
  return memory().slice(at, at + len);
}

/** Hands the core a command (see web/src/lib.rs `run`), then does what it says. */
function command(cmd) {
  clock();
  put(enc.encode(JSON.stringify(cmd)));
  const len = wasm.lt_command();
  if (len) notice(JSON.parse(dec.decode(output(len))).error);
  drain();
}

function feed(side, data) {
  clock();
  put(new Uint8Array(data));
  wasm.lt_bytes(side);
  drain();
}

/** Carries out the core's outputs, in order, then sets its timer. */
function drain() {
  for (;;) {
    const len = wasm.lt_next();
    if (!len) break;
    const out = output(len);
    switch (out[0]) {
      case 1: if (conn.ws && conn.ws.readyState === WebSocket.OPEN) conn.ws.send(out.subarray(1)); break;
      case 2: {
        const side = sides.get(out[1] | (out[2] << 8) | (out[3] << 16) | (out[4] << 24));
        if (side && side.ws.readyState === WebSocket.OPEN) side.ws.send(out.subarray(5));
        break;
      }
      case 3: {
        const n = out[1] | (out[2] << 8);
        save(dec.decode(out.subarray(3, 3 + n)), out.subarray(3 + n));
        break;
      }
      default: handle(JSON.parse(dec.decode(out)));
    }
  }
  clearTimeout(timer);
  const at = wasm.lt_deadline();
  if (at >= 0) timer = setTimeout(() => command({ t: 'timeout' }), Math.max(0, at - performance.now()));
}

// --- storage: this browser's key, the server's pinned key, the name ----------

function hex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(''); }
function randomHex(n) { return hex(crypto.getRandomValues(new Uint8Array(n))); }

// What was stored, also kept in memory: where localStorage is refused
// (some private modes, full storage), the identity and the pinned server key
// still hold for the page's life, so a reconnection is not a first contact.
const kept = new Map();
let keptOnlyHere = false;
function stored(key, fallback) {
  if (kept.has(key)) return kept.get(key);
  try { const v = localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); } catch { return fallback; }
}
function store(key, value) {
  kept.set(key, value);
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    if (!keptOnlyHere) {
      keptOnlyHere = true;
      notice('This browser does not let the page store data: the server\'s key is remembered only until this tab closes.');
    }
  }
}

function identity() {
  let key = stored('lantalk.identity', null);
  if (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)) {
    key = randomHex(32);
    store('lantalk.identity', key);
  }
  return key;
}
function pins() { const p = stored('lantalk.pins', {}); return p && typeof p === 'object' ? p : {}; }
function pinned() { const p = pins()[location.origin]; return p && typeof p.key === 'string' ? p.key : null; }
function pin(key, fingerprint) { const p = pins(); p[location.origin] = { key, fingerprint }; store('lantalk.pins', p); }
function unpin() { const p = pins(); delete p[location.origin]; store('lantalk.pins', p); }

// --- the connection -----------------------------------------------------------

const conn = {
  ws: null, name: '', password: '', joined: false, everJoined: false,
  tries: 0, retry: 0, countdown: 0, quitting: false, unsent: [], resume: [],
};
const sides = new Map();

function wsUrl() { return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`; }

function connect(fresh) {
  clearTimeout(conn.retry);
  clearInterval(conn.countdown);
  // Marks for measuring (bench/web_join.py): the page's timeline, read
  // with performance.getEntriesByType('mark').
  performance.mark(fresh ? 'lantalk-connect' : 'lantalk-reconnect');
  const ws = new WebSocket(wsUrl());
  ws.binaryType = 'arraybuffer';
  conn.ws = ws;
  let started = false;
  setState('connecting', fresh ? 'Connecting…' : 'Reconnecting…');
  ws.onopen = () => {
    if (conn.ws !== ws) return;
    started = true;
    command({
      t: 'start', name: conn.name, password: conn.password, identity: identity(),
      seed: randomHex(32), pinned: pinned(), fresh,
    });
  };
  ws.onmessage = (e) => { if (conn.ws === ws) feed(-1, e.data); };
  ws.onclose = () => {
    if (conn.ws !== ws) return;
    conn.ws = null;
    if (started) command({ t: 'closed' });
    else lost('Cannot reach the server.');
  };
}

/** The connection ended without a refusal: try again by itself, slower each time. */
function lost(reason) {
  conn.joined = false;
  if (!conn.everJoined) {
    setState('closed', 'Not connected');
    showError(`${reason} Is the server running?`);
    showLogin();
    return;
  }
  const wait = BACKOFF[Math.min(conn.tries, BACKOFF.length - 1)];
  conn.tries += 1;
  let left = wait;
  const tick = () => setState('reconnecting', 'Connection lost. Reconnecting…', `(in ${left} s)`);
  tick();
  conn.countdown = setInterval(() => { left -= 1; if (left > 0) tick(); }, 1000);
  conn.retry = setTimeout(() => connect(false), wait * 1000);
}

function done(msg) {
  conn.joined = false;
  // The core's session is over, whoever ended it: the socket goes too, or
  // the server would hold our name until its idle timeout and a rejoin
  // would be refused as taken. (A close waits for what is queued.)
  const ws = conn.ws;
  conn.ws = null;
  if (ws) ws.close();
  sides.forEach((s) => s.ws.close());
  sides.clear();
  if (msg.refused) {
    // A name still held by our own lost session clears when the server
    // notices it gone: a reconnection tries again before giving up.
    if (msg.why === 'name_taken' && conn.everJoined && conn.tries < 5) return lost(msg.reason);
    conn.everJoined = false;
    setState('refused', 'Refused');
    showError(refusal(msg.why, msg.reason));
    $('forget-key').hidden = msg.why !== 'key_changed';
    showLogin();
  } else if (msg.expected || conn.quitting) {
    conn.quitting = false;
    conn.everJoined = false;
    setState('closed', 'You left the chat');
    showLogin();
  } else {
    conn.resume = msg.resume || [];
    lost(msg.reason);
  }
}

function refusal(why, reason) {
  switch (why) {
    case 'wrong_password': return 'Wrong password. Check it and join again.';
    case 'needs_password': return 'This server needs a password: type it and join again.';
    case 'name_taken': return 'That name is taken on this server. Pick another one.';
    case 'invalid_name': return `That name cannot be used: ${reason}`;
    case 'key_changed':
      return `Refused: the server's key changed. ${reason} If the server was reinstalled, ask its operator to confirm its new key before you forget the old one.`;
    default: return reason;
  }
}

// --- side connections (file transfers) ----------------------------------------

function openSide(id) {
  const ws = new WebSocket(wsUrl());
  ws.binaryType = 'arraybuffer';
  const side = { ws, open: false };
  sides.set(id, side);
  ws.onopen = () => { side.open = true; command({ t: 'side_opened', side: id }); };
  ws.onmessage = (e) => { if (sides.get(id) === side) feed(id, e.data); };
  ws.onclose = () => { if (sides.get(id) === side) { sides.delete(id); command({ t: 'side_closed', side: id }); } };
}

/** Calls `then` once everything sent on `ws` has left the browser. */
function whenDrained(ws, then) {
  if (ws.bufferedAmount === 0 || ws.readyState !== WebSocket.OPEN) return then();
  setTimeout(() => whenDrained(ws, then), 10);
}

// --- what the core says -------------------------------------------------------

function handle(msg) {
  switch (msg.t) {
    case 'event': return event(msg);
    case 'done': return done(msg);
    case 'open': return openSide(msg.side);
    case 'side_watch': {
      const side = sides.get(msg.side);
      if (side) whenDrained(side.ws, () => sides.get(msg.side) === side && command({ t: 'side_drained', side: msg.side }));
      return undefined;
    }
    case 'side_close': {
      const side = sides.get(msg.side);
      sides.delete(msg.side);
      if (side) whenDrained(side.ws, () => side.ws.close());
      return undefined;
    }
    // A WebSocket cannot stop reading, and the core writes a download into
    // memory as fast as it arrives: nothing piles up to pause for.
    case 'side_pause': return undefined;
    // A WebSocket has no half-close: the server closes once it has read
    // the goodbye, and the core's grace period covers a server that does not.
    case 'half_close': return undefined;
    case 'error': return notice(msg.error);
    default: return undefined;
  }
}

function event(e) {
  switch (e.e) {
    case 'secured':
      if (e.new) pin(e.key, e.fingerprint);
      $('fingerprint').textContent = e.fingerprint;
      return setState('secured', 'Encrypted; logging in…');
    case 'awaiting_approval':
      $('code').textContent = e.code;
      $('code-box').hidden = false;
      return setState('secured', 'Waiting for the host to approve you…');
    case 'joined': return joined(e);
    case 'refused': return undefined; // `done` follows with the reason
    case 'message': {
      // Servers relay `/me` as the line itself; history marks it instead.
      const action = e.text.startsWith('/me ');
      const text = action ? e.text.slice(4) : e.text;
      return add(e.room || LOBBY, { id: e.id, from: e.user, text, at: e.at_ms, action, mine: false });
    }
    case 'pm': {
      const key = `@${e.from}`;
      addRoom(key);
      return add(key, { from: e.from, text: e.text, mine: false, pm: true });
    }
    case 'pm_sent': addRoom(`@${e.to}`); return add(`@${e.to}`, { from: conn.name, text: e.text, mine: true });
    case 'sent': return add(e.room || ui.current, { from: conn.name, text: e.text, mine: true });
    case 'action_sent': return add(e.room || ui.current, { from: conn.name, text: e.text, mine: true, action: true });
    case 'queued': return notice(`Waiting for the rate limit (${e.ahead} ahead): ${e.text}`);
    case 'system': return add(e.room || ui.current, { text: e.text, kind: 'system' });
    case 'notice': return notice(e.text);
    case 'clear': { const r = ui.rooms.get(ui.current); if (r) r.lines = []; return render(); }
    case 'roster': ui.users = new Set(e.users); return renderUsers();
    case 'presence':
      if (e.online) ui.users.add(e.user); else ui.users.delete(e.user);
      return renderUsers();
    case 'room_entered':
    case 'room_updated': {
      // Entered again (after a reconnection): its join page may hold lines
      // missed meanwhile (see `history`).
      if (e.e === 'room_entered' && ui.rooms.has(e.room)) ui.rooms.get(e.room).entered = true;
      const r = addRoom(e.room);
      r.topic = e.topic;
      r.members = e.members;
      if (e.room === ui.current) renderHead();
      return renderRooms();
    }
    case 'room_left':
      ui.rooms.delete(e.room);
      if (ui.current === e.room) ui.current = LOBBY;
      notice(e.reason);
      return render();
    case 'room_member': return add(e.room, { text: e.text, kind: 'system' });
    case 'switched':
      if (e.room !== ui.current) show(e.room);
      return undefined;
    case 'history': return history(e);
    case 'file_shared': return fileShared(e);
    case 'file_list':
      e.files.forEach((f) => ui.files.set(f.id, f));
      renderFiles();
      return notice(e.files.length ? `${e.files.length} file(s) offered: see Files.` : 'No files are offered to you.');
    case 'file_removed': ui.files.delete(e.id); return renderFiles();
    case 'transfer': return progress(e);
    case 'transfer_done':
      endProgress(e.id, e.upload);
      return notice(e.upload ? `Sent ${e.name} (${size(e.size)}).` : `Downloaded ${e.name} (${size(e.size)}), checked.`);
    case 'transfer_failed':
      if (e.id !== null) endProgress(e.id, e.upload);
      return notice(`${e.upload ? 'Sending' : 'Downloading'} ${e.name} failed: ${e.reason}`);
    case 'disconnected': return undefined; // `done` says what happens next
    default: return undefined;
  }
}

function joined(e) {
  performance.mark('lantalk-joined');
  conn.joined = true;
  conn.everJoined = true;
  conn.tries = 0;
  // A `/history` page asked for on the last connection will never be
  // answered: scrolling up may ask again.
  ui.loadingOlder = false;
  store('lantalk.name', e.username);
  conn.name = e.username;
  $('server-name').textContent = e.server_name;
  $('code-box').hidden = true;
  $('forget-key').hidden = true;
  showError('');
  setState('joined', `Joined as ${e.username}`);
  $('login-view').hidden = true;
  $('chat-view').hidden = false;
  render();
  // What was typed while the connection was down, transfers to resume.
  const pending = conn.resume.concat(conn.unsent);
  conn.resume = [];
  conn.unsent = [];
  pending.forEach((text) => command({ t: 'line', text }));
  if (!matchMedia('(max-width: 48rem)').matches || !ui.sidebarOpen) $('message').focus();
}

// --- the rooms and their lines -------------------------------------------------

const ui = {
  rooms: new Map(), current: LOBBY, users: new Set(), files: new Map(),
  loadingOlder: false, sidebarOpen: false,
};

function addRoom(key) {
  let r = ui.rooms.get(key);
  if (!r) {
    r = { lines: [], ids: new Set(), unread: 0, topic: '', members: [], more: false, oldest: null };
    ui.rooms.set(key, r);
    renderRooms();
  }
  return r;
}

function mentions(text) {
  if (!conn.name) return false;
  const name = conn.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\p{L}\\p{N}_])@?${name}($|[^\\p{L}\\p{N}_])`, 'iu').test(text);
}

/** A line in room `key`: kept, shown if the room is on screen, counted if not. */
function add(key, line) {
  const r = addRoom(key);
  if (line.id != null) {
    if (r.ids.has(line.id)) return;
    r.ids.add(line.id);
  }
  line.at = line.at || Date.now();
  line.mention = !line.mine && !line.kind && mentions(line.text);
  r.lines.push(line);
  if (r.lines.length > MAX_LINES) r.lines.splice(0, r.lines.length - MAX_LINES);
  const seen = key === ui.current && !document.hidden;
  if (!seen && !line.mine && !line.kind) {
    r.unread += 1;
    if (line.mention || line.pm) notify(line.pm ? `${line.from} (private)` : `${line.from} in ${key}`, line.text);
    renderRooms();
  }
  if (key === ui.current) append(line);
}

function history(e) {
  const key = e.place.room || `@${e.place.pm}`;
  if (e.reason === 'search') {
    if (!e.lines.length) return notice('No matches.');
    return e.lines.forEach((l) => add(ui.current, { text: `[search] ${l.user}: ${l.text}`, kind: 'notice', at: l.at_ms }));
  }
  const r = addRoom(key);
  // The newest line shown before this answer: what is newer was missed.
  const newest = r.ids.size ? Math.max(...r.ids) : null;
  const lines = [];
  for (const l of e.lines) {
    if (r.ids.has(l.id)) continue;
    r.ids.add(l.id);
    // Our own lines were shown when sent, before the server gave them an
    // id: a catch-up after a reconnection brings them back once, with it.
    const own = l.user === conn.name && r.lines.find((x) => x.id == null && x.mine && x.text === l.text);
    if (own) { own.id = l.id; continue; }
    lines.push({ id: l.id, from: l.user, text: l.text, at: l.at_ms, action: l.action, mine: l.user === conn.name });
  }
  if (e.reason === 'page' || (r.oldest !== null && lines.length && lines[lines.length - 1].id < r.oldest)) {
    r.lines = lines.concat(r.lines);
  } else {
    r.lines = r.lines.concat(lines).sort((a, b) => (a.id != null && b.id != null ? a.id - b.id : 0));
  }
  const ids = lines.map((l) => l.id);
  if (ids.length) r.oldest = Math.min(r.oldest ?? Infinity, ...ids);
  if (e.reason !== 'resume') r.more = e.more;
  ui.loadingOlder = false;
  // What was missed while the connection was down is unread like any new
  // line, in the rooms not on screen (or all of them, the tab hidden): a
  // catch-up, or the page a room sends on entering it again (when nothing
  // had been seen in it, there was nothing to resume after).
  const rejoined = e.reason === 'resume' || (e.reason === 'join' && r.entered);
  const missed = rejoined ? lines.filter((l) => !l.mine && (newest === null || l.id > newest)).length : 0;
  if (missed && (key !== ui.current || document.hidden)) {
    r.unread += missed;
    renderRooms();
  }
  if (key === ui.current) {
    const s = $('scroller');
    const fromBottom = s.scrollHeight - s.scrollTop;
    render();
    if (e.reason === 'page') s.scrollTop = s.scrollHeight - fromBottom;
  }
  return undefined;
}

function show(key) {
  ui.current = key;
  const r = addRoom(key);
  r.unread = 0;
  render();
}

/** The person picked a room (or a private conversation) in the list. */
function pick(key) {
  closeSidebar();
  if (key === ui.current) return;
  if (key.startsWith('@')) show(key);
  else { command({ t: 'line', text: `/switch ${key}` }); show(key); }
  $('message').focus();
}

// --- drawing -------------------------------------------------------------------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function hhmm(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function lineElement(line) {
  const li = el('li', 'msg');
  li.dataset.id = line.id != null ? String(line.id) : '';
  li.dataset.room = ui.current;
  if (line.kind) li.classList.add(line.kind);
  if (line.mine) li.classList.add('mine');
  if (line.mention) li.classList.add('mention');
  if (line.action) li.classList.add('action');
  const time = el('time', 'time', hhmm(line.at));
  time.dateTime = new Date(line.at).toISOString();
  li.append(time);
  if (line.from !== undefined) li.append(el('span', 'from', line.action ? `* ${line.from}` : line.from));
  li.append(el('span', 'text', line.text));
  if (line.file) {
    const b = el('button', '', 'Download');
    b.type = 'button';
    b.addEventListener('click', () => command({ t: 'line', text: `/get ${line.file}` }));
    li.append(b);
  }
  return li;
}

function nearBottom() { const s = $('scroller'); return s.scrollHeight - s.scrollTop - s.clientHeight < 80; }
function toBottom() { const s = $('scroller'); s.scrollTop = s.scrollHeight; }

function append(line) {
  const stick = nearBottom() || line.mine;
  $('messages').append(lineElement(line));
  const list = $('messages');
  while (list.children.length > MAX_LINES) list.firstChild.remove();
  if (stick) toBottom();
}

function render() {
  const r = addRoom(ui.current);
  const list = $('messages');
  list.replaceChildren(...r.lines.map(lineElement));
  $('older').hidden = !r.more;
  renderHead();
  renderRooms();
  toBottom();
}

function renderHead() {
  const r = ui.rooms.get(ui.current);
  $('room-title').textContent = ui.current.startsWith('@') ? `Private: ${ui.current.slice(1)}` : ui.current;
  $('topic').textContent = r ? r.topic : '';
  $('message').placeholder = ui.current.startsWith('@')
    ? `Private message to ${ui.current.slice(1)}`
    : `Message ${ui.current}`;
  $('attach').title = `Send a file to ${ui.current.startsWith('@') ? ui.current.slice(1) : ui.current}`;
}

function renderRooms() {
  const list = $('rooms');
  const keys = [...ui.rooms.keys()].sort((a, b) => (a === LOBBY ? -1 : b === LOBBY ? 1 : a.localeCompare(b)));
  list.replaceChildren(...keys.map((key) => {
    const r = ui.rooms.get(key);
    const li = el('li');
    li.dataset.room = key;
    li.tabIndex = 0;
    li.setAttribute('role', 'button');
    if (key === ui.current) li.setAttribute('aria-current', 'true');
    li.append(el('span', 'name', key.startsWith('@') ? `✉ ${key.slice(1)}` : key));
    const unread = el('span', 'unread', r.unread ? String(r.unread) : '');
    if (r.unread) unread.setAttribute('aria-label', `${r.unread} unread`);
    li.append(unread);
    li.addEventListener('click', () => pick(key));
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(key); } });
    return li;
  }));
  const total = [...ui.rooms.values()].reduce((n, r) => n + r.unread, 0);
  document.title = total ? `(${total}) LanTalk` : 'LanTalk';
  $('menu').textContent = total ? `Rooms (${total})` : 'Rooms';
}

function renderUsers() {
  const names = [...ui.users].sort((a, b) => a.localeCompare(b));
  $('users').replaceChildren(...names.map((n) => {
    // A button, so a keyboard (Tab, Enter) opens the conversation too.
    const b = el('button', 'user', n);
    b.type = 'button';
    b.title = `Message ${n} privately`;
    b.addEventListener('click', () => { addRoom(`@${n}`); pick(`@${n}`); });
    const li = el('li');
    li.append(b);
    return li;
  }));
  $('user-count').textContent = `(${names.length})`;
}

/**
 * `#status` is a live region: screen readers say each change. `text` is said
 * once per state; `ticking` (a countdown) is shown but hidden from them, or
 * they would announce every second.
 */
function setState(state, text, ticking) {
  const status = $('status');
  if (status.dataset.state !== state || status.firstChild?.textContent !== text) {
    status.dataset.state = state;
    status.replaceChildren(el('span', '', text));
  }
  if (ticking !== undefined) {
    let tick = status.querySelector('.tick');
    if (!tick) {
      tick = el('span', 'tick');
      tick.setAttribute('aria-hidden', 'true');
      status.append(tick);
    }
    tick.textContent = ` ${ticking}`;
  }
}

function showError(text) { $('error').textContent = text; }

function showLogin() {
  $('login-view').hidden = false;
  $('chat-view').hidden = true;
  $('join').disabled = false;
  $('code-box').hidden = true;
}

/** A line for this person only, in the room on screen. */
function notice(text) {
  if ($('chat-view').hidden) return showError(text);
  return add(ui.current, { text, kind: 'notice' });
}

function notify(title, body) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  if (!document.hidden) return;
  try { new Notification(title, { body: body.slice(0, 200), tag: 'lantalk' }); } catch { /* not allowed here */ }
}

// --- files ---------------------------------------------------------------------

function size(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n;
  let u = -1;
  do { v /= 1024; u += 1; } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

function fileShared(e) {
  ui.files.set(e.id, e);
  renderFiles();
  const key = e.to.startsWith('#') ? e.to : (e.from === conn.name ? `@${e.to}` : `@${e.from}`);
  const mine = e.from === conn.name;
  add(key, {
    text: mine ? `You shared ${e.name}${e.folder ? '/' : ''} (${size(e.size)})` : `${e.from} shared ${e.name}${e.folder ? '/' : ''} (${size(e.size)})`,
    kind: 'system', file: mine ? null : e.id,
  });
}

function renderFiles() {
  const files = [...ui.files.values()].sort((a, b) => b.at_ms - a.at_ms);
  $('files').replaceChildren(...files.map((f) => {
    const li = el('li');
    li.append(el('span', 'name', `${f.name} · ${size(f.size)} · ${f.from}`));
    if (f.from !== conn.name) {
      const b = el('button', '', 'Get');
      b.type = 'button';
      b.setAttribute('aria-label', `Download ${f.name}`);
      b.addEventListener('click', () => command({ t: 'line', text: `/get ${f.id}` }));
      li.append(b);
    }
    return li;
  }));
}

const bars = new Map();
function progress(e) {
  const key = `${e.upload ? 'up' : 'down'}${e.id}`;
  let bar = bars.get(key);
  if (!bar) {
    const li = el('li');
    const label = el('span', 'label', `${e.upload ? '↑' : '↓'} ${e.name}`);
    const p = el('progress');
    p.setAttribute('aria-label', `${e.upload ? 'Sending' : 'Downloading'} ${e.name}`);
    const pct = el('span', 'pct');
    const cancel = el('button', '', 'Cancel');
    cancel.type = 'button';
    cancel.addEventListener('click', () => command({ t: 'line', text: `/cancel ${e.id}` }));
    li.append(label, p, pct, cancel);
    $('transfers').append(li);
    bar = { li, p, pct };
    bars.set(key, bar);
  }
  bar.p.max = e.total || 1;
  bar.p.value = e.done;
  bar.pct.textContent = `${e.total ? Math.floor((100 * e.done) / e.total) : 100}%`;
}
function endProgress(id, upload) {
  const key = `${upload ? 'up' : 'down'}${id}`;
  const bar = bars.get(key);
  if (bar) { bar.li.remove(); bars.delete(key); }
}

function save(name, bytes) {
  const url = URL.createObjectURL(new Blob([bytes]));
  const a = el('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function sendFiles(files) {
  const target = ui.current.startsWith('@') ? ui.current.slice(1) : ui.current;
  for (const file of files) {
    if (file.size > MAX_FILE) {
      notice(`${file.name} is too big to send from a browser (at most 256 MiB); use the terminal client.`);
      continue;
    }
    // eslint-disable-next-line no-await-in-loop
    const bytes = new Uint8Array(await file.arrayBuffer());
    const name = enc.encode(file.name);
    const all = new Uint8Array(name.length + bytes.length);
    all.set(name);
    all.set(bytes, name.length);
    clock();
    put(all);
    const len = wasm.lt_pick(name.length, file.lastModified || 0);
    if (len) { notice(JSON.parse(dec.decode(output(len))).error); continue; }
    command({ t: 'line', text: `/send ${target} ${file.name}` });
  }
}

// --- typing ------------------------------------------------------------------

function submit() {
  const box = $('message');
  const lines = box.value.split('\n').filter((l) => l.trim() !== '');
  box.value = '';
  grow();
  for (const raw of lines) {
    let text = raw;
    if (ui.current.startsWith('@')) {
      // In a private conversation, nothing typed may land in a public room:
      // a message (and `//literal`) goes privately; `/me` has no private form.
      const to = ui.current.slice(1);
      if (/^\/me(\s|$)/i.test(text)) {
        notice(`/me is for rooms; not sent to ${to}: "${raw}"`);
        continue;
      }
      if (!text.startsWith('/')) text = `/pm ${to} ${text}`;
      else if (text.startsWith('//')) text = `/pm ${to} ${text.slice(1)}`;
    }
    if (/^\/(quit|exit|q)\b/i.test(text)) conn.quitting = true;
    if (!conn.joined) {
      conn.unsent.push(text);
      notice(`Not connected: "${raw}" will be sent once reconnected.`);
    } else {
      command({ t: 'line', text });
    }
  }
}

function grow() {
  const box = $('message');
  box.style.height = '';
  if (box.scrollHeight > box.clientHeight) box.style.height = `${Math.min(box.scrollHeight + 2, 144)}px`;
}

function closeSidebar() {
  ui.sidebarOpen = false;
  $('sidebar').classList.remove('open');
  $('menu').setAttribute('aria-expanded', 'false');
}

function wire() {
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    conn.name = $('name').value.trim();
    conn.password = $('password').value;
    if (!conn.name) return;
    showError('');
    $('join').disabled = true;
    conn.tries = 0;
    // Asked on a click, as browsers require; only secure contexts have it.
    if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
    ui.rooms.clear();
    ui.current = LOBBY;
    connect(true);
  });
  $('forget-key').addEventListener('click', () => {
    unpin();
    $('forget-key').hidden = true;
    showError('The old key is forgotten. Join again to trust the key the server shows now.');
  });
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  $('message').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  $('message').addEventListener('input', grow);
  $('older').addEventListener('click', older);
  $('scroller').addEventListener('scroll', () => { if ($('scroller').scrollTop < 40) older(); });
  $('file-input').addEventListener('change', (e) => { sendFiles([...e.target.files]); e.target.value = ''; });
  $('attach').addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file-input').click(); } });
  $('attach').tabIndex = 0;
  $('menu').addEventListener('click', () => {
    ui.sidebarOpen = !ui.sidebarOpen;
    $('sidebar').classList.toggle('open', ui.sidebarOpen);
    $('menu').setAttribute('aria-expanded', String(ui.sidebarOpen));
  });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && ui.sidebarOpen) closeSidebar(); });
  let depth = 0;
  document.addEventListener('dragenter', (e) => { if (conn.joined && e.dataTransfer.types.includes('Files')) { depth += 1; $('drop').hidden = false; } });
  document.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) $('drop').hidden = true; });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    $('drop').hidden = true;
    if (conn.joined && e.dataTransfer.files.length) sendFiles([...e.dataTransfer.files]);
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) return;
    const r = ui.rooms.get(ui.current);
    if (r && r.unread) { r.unread = 0; renderRooms(); }
  });
  window.addEventListener('online', () => { if (!conn.joined && conn.everJoined && !conn.ws) connect(false); });
}

function older() {
  const r = ui.rooms.get(ui.current);
  if (!r || !r.more || ui.loadingOlder || !conn.joined) return;
  ui.loadingOlder = true;
  command({ t: 'line', text: ui.current.startsWith('@') ? `/history @${ui.current.slice(1)}` : '/history' });
}

async function main() {
  wire();
  $('name').value = stored('lantalk.name', '') || '';
  try {
    const { instance } = await WebAssembly.instantiateStreaming(fetch('lantalk_web.wasm'), {});
    wasm = instance.exports;
  } catch (e) {
    setState('closed', 'Could not start');
    showError(`This browser could not load the client (${e.message}). A current Chrome, Firefox or Safari can.`);
    $('join').disabled = true;
    return;
  }
  setState('closed', 'Not connected');
  $('join').disabled = false;
  performance.mark('lantalk-ready');
  ($('name').value ? $('password') : $('name')).focus();
}

main();
