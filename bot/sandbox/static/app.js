/*
 * Approvals sandbox: a small Slack look-alike for trying the approval bot without a workspace.
 * The page fetches /sandbox/api/state for the "Acting as" user whenever the server's event
 * stream says something changed, then renders the conversations, the messages (Block Kit or
 * mrkdwn; a thread's replies under their parent's "N replies", in the thread pane once
 * opened), the open modal, the workflows panel and the webhooks panel (what the built-in
 * receiver got), and the app's Home tab as the acting person sees it (opening it tells the app,
 * which publishes it). Sending, clicking buttons and submitting
 * or cancelling modals are POSTed to /sandbox/api/*, after which the state is fetched again.
 */
"use strict";

const API = "/sandbox/api";
const EMOJI = { white_check_mark: "✅", no_entry: "⛔", no_entry_sign: "🚫", hourglass: "⌛", warning: "⚠️", x: "❌", rocket: "🚀", lock: "🔒", unlock: "🔓", hourglass_flowing_sand: "⏳", bell: "🔔" };
const ENDED = ["finished", "failed", "cancelled"];

const ui = {
  user: null, // acting user id
  data: null, // last state received
  selected: null, // selected conversation id
  thread: null, // { channel, ts } of the thread open in the thread pane
  wantDm: false, // after a user switch, select the new user's DM
  seen: {}, // user id -> conversation id -> latest ts seen
  baseline: null, // latest ts when the page loaded: older messages count as read
  pendingClicks: new Set(), // "ts action_id" of clicks awaiting their response
  openHistories: new Set(), // workflow ids whose history is expanded
  openDetails: new Set(), // workflow ids whose engine details are expanded
  openBodies: new Set(), // ids of webhook deliveries whose body is expanded
  submitErrors: {}, // view id -> errors from the last submit response
  rendered: {}, // signatures of what is on screen, to skip needless re-renders
};
const messageJson = new WeakMap(); // message node -> the message it shows, as JSON
const mention = { matches: [], start: -1, prefix: "" }; // @autocomplete: matches, where "@" starts, typed part

const $ = (id) => document.getElementById(id);
const pad = (n) => String(n).padStart(2, "0");

/* ---------- small helpers ---------- */

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "html") node.innerHTML = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function escapeHtml(text) {
  const map = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  return String(text ?? "").replace(/[&<>"']/g, (c) => map[c]);
}

const textOf = (obj) => (obj && typeof obj.text === "string" ? obj.text : "");

function userName(id) {
  const user = ((ui.data && ui.data.users) || []).find((u) => u.id === id);
  return user ? user.name : null;
}

/** A person's or the bot's name from their id alone (a thread's reply_users). */
const nameOf = (id) => userName(id) || (ui.data && ui.data.bot && ui.data.bot.id === id ? ui.data.bot.name : id) || "?";

/** A reply in a thread (its parent carries thread_ts too, its own ts). */
const isReply = (m) => Boolean(m.thread_ts) && m.thread_ts !== m.ts;
const repliesText = (count) => `${count} ${count === 1 ? "reply" : "replies"}`;

function tsKey(ts) {
  if (!ts) return "";
  const [seconds, fraction = ""] = String(ts).split(".");
  return `${seconds.padStart(12, "0")}.${fraction.padEnd(6, "0")}`;
}

const dateFromTs = (ts) => new Date(Number(String(ts).split(".")[0]) * 1000);
const clock = (date) => `${pad(date.getHours())}:${pad(date.getMinutes())}`;

function clockFromTs(ts) {
  const date = dateFromTs(ts);
  return isNaN(date) ? "" : clock(date);
}

/** "today", "yesterday" or "tomorrow" as Slack says them, or null for other days. */
function relativeDay(date) {
  const midnight = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((midnight(date) - midnight(new Date())) / 86_400_000);
  return { "-1": "yesterday", 0: "today", 1: "tomorrow" }[days] ?? null;
}

const parseTime = (iso) => new Date(String(iso ?? "").replace(" ", "T")); // Python's str() has a space

function clockFromIso(iso) {
  const date = parseTime(iso);
  if (isNaN(date)) return String(iso ?? "");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/* ---------- notices and API ---------- */

function showNotice(message) {
  $("notice-text").textContent = String(message).slice(0, 300);
  $("notice").hidden = false;
}

async function api(path, body) {
  const options = body === undefined ? {}
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let response;
  try {
    response = await fetch(API + path, options);
  } catch {
    showNotice("Cannot reach the sandbox server.");
    return null;
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (response.ok && data && data.ok !== false) return data;
  const error = data && typeof data.error === "string" && data.error;
  showNotice(error || (response.ok ? "Unexpected answer from the server." : `Request failed (HTTP ${response.status}).`));
  return null;
}

/** POSTs as the acting user, then refetches the state. */
async function post(path, body) {
  const result = await api(path, { user: ui.user, ...body });
  refresh();
  return result;
}

/* ---------- state loading: at most one fetch in flight, one more queued ---------- */

let fetching = false;
let fetchAgain = false;

async function refresh() {
  if (fetching) { fetchAgain = true; return; }
  fetching = true;
  try {
    do { fetchAgain = false; await loadState(); } while (fetchAgain);
  } finally {
    fetching = false;
  }
}

async function loadState() {
  const user = ui.user;
  const data = await api(user ? `/state?user=${encodeURIComponent(user)}` : "/state");
  if (!data || user !== ui.user) return; // failed, or the acting user changed meanwhile
  if (!user) { // first load: act as the first user
    ui.user = (data.users && data.users[0] && data.users[0].id) || data.me;
    if (ui.user !== data.me) { fetchAgain = true; return; }
  }
  render(data);
}

function render(data) {
  ui.data = data;
  resolveSelection(data.conversations || []);
  markSeen(data);
  renderActingAs(data.users || []);
  renderHint(data.commands || []);
  renderSidebar(data.conversations || []);
  renderConversation();
  renderModal((data.views || [])[0]);
  renderWorkflows(data.workflows || []);
  renderWebhooks(data.webhooks || [], data.webhooks_failing || 0);
}

/* ---------- acting user, sidebar, unread dots ---------- */

/** Below the composer: the slash commands of the loaded blueprints, with their usage. */
function renderHint(commands) {
  const hint = $("hint");
  const shown = commands.map((c) => `${c.command} ${c.usage}`.trim()).join("\n");
  if (hint.dataset.shown === shown) return;
  hint.dataset.shown = shown;
  const items = commands.map((c) => el("code", { title: c.description }, `${c.command} ${c.usage}`.trim()));
  hint.replaceChildren(...(items.length ? ["Try: "] : []), ...items.flatMap((item, i) => (i ? [" · ", item] : [item])));
}

/** A DM's "with" names its person (the sandbox lists everyone's DM); without it, it is mine. */
function resolveSelection(conversations) {
  const dms = conversations.filter((c) => c.kind === "dm");
  const mine = dms.find((c) => c.with === ui.user) || dms.find((c) => !c.with);
  if (ui.wantDm && mine) ui.selected = mine.id;
  ui.wantDm = false;
  if (!conversations.some((c) => c.id === ui.selected)) {
    const general = conversations.find((c) => c.name === "#general") || conversations[0];
    ui.selected = general ? general.id : null;
  }
}

const currentConversation = () =>
  ((ui.data && ui.data.conversations) || []).find((c) => c.id === ui.selected) || null;

/** The latest message in the conversation itself: replies in a thread leave it read, as in Slack. */
function latestTs(id) {
  const messages = ((ui.data.messages || {})[id] || []).filter((m) => !isReply(m));
  return messages.length ? messages[messages.length - 1].ts : "";
}

/** The selected conversation is read, and so is every message older than the page itself. */
function markSeen(data) {
  if (ui.baseline === null) {
    const latest = (data.conversations || []).map((c) => latestTs(c.id));
    ui.baseline = latest.reduce((a, b) => (tsKey(b) > tsKey(a) ? b : a), "");
  }
  const seen = (ui.seen[ui.user] ||= {});
  if (ui.selected) seen[ui.selected] = latestTs(ui.selected);
}

function isUnread(id) {
  const seen = (ui.seen[ui.user] || {})[id] ?? ui.baseline;
  return id !== ui.selected && tsKey(latestTs(id)) > tsKey(seen);
}

function renderActingAs(users) {
  const select = $("acting-as");
  const signature = JSON.stringify(users);
  if (signature !== ui.rendered.users) {
    ui.rendered.users = signature;
    select.replaceChildren(...users.map((u) => el("option", { value: u.id }, `${u.name} (${u.role})`)));
  }
  select.value = ui.user;
}

function onActingAsChange(event) {
  const current = currentConversation() || {};
  ui.wantDm = current.kind === "dm" && (!current.with || current.with === ui.user); // on their own DM
  ui.user = event.target.value;
  closeMentions();
  if (isHome()) openHome(); // the new person opens their own Home
  else refresh();
}

/**
 * The sidebar's buttons are built once per list of conversations and then updated in place:
 * a button replaced between a mousedown and its mouseup loses the click, and the page
 * re-renders whenever anything changes.
 */
function renderSidebar(conversations) {
  const signature = JSON.stringify(conversations.map((c) => [c.id, c.name, c.kind]));
  if (signature !== ui.rendered.sidebar) {
    ui.rendered.sidebar = signature;
    const item = (c) => el("li", {}, el("button", { type: "button", "data-conversation": c.id }, c.name));
    $("channels").replaceChildren(...conversations.filter((c) => c.kind === "channel").map(item));
    $("apps").replaceChildren(...conversations.filter((c) => c.kind === "home").map(item));
    $("dms").replaceChildren(...conversations.filter((c) => c.kind === "dm").map(item));
  }
  for (const button of document.querySelectorAll(".sidebar [data-conversation]")) markConversation(button);
}

function markConversation(button) {
  const id = button.dataset.conversation;
  const selected = id === ui.selected;
  const unread = isUnread(id);
  button.className = ["conversation", selected && "selected", unread && "unread"].filter(Boolean).join(" ");
  if (selected) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
  const dot = button.querySelector(".unread-dot");
  if (unread && !dot) button.append(el("span", { className: "unread-dot", title: "New messages" }));
  if (!unread && dot) dot.remove();
}

function selectConversation(id) {
  ui.wantDm = false; // an explicit choice wins over the automatic one after a user switch
  if (!ui.data || id === ui.selected) return;
  ui.selected = id;
  if (isHome()) openHome();
  markSeen(ui.data);
  renderSidebar(ui.data.conversations || []);
  renderConversation();
  closeMentions();
  $("composer").focus();
}

/* ---------- messages ---------- */

function renderConversation() {
  const conversation = currentConversation();
  const home = isHome();
  $("app-tabs").hidden = !home;
  document.querySelector(".composer").hidden = home;
  if (home) { ui.thread = null; renderThread([]); renderHome(); return; }
  const name = conversation ? conversation.name : "";
  $("conversation-name").textContent = name;
  $("composer").placeholder = name ? `Message ${name}` : "";
  const messages = conversation ? (ui.data.messages || {})[conversation.id] || [] : [];
  renderMessages(messages.filter((m) => !isReply(m))); // a parent carries its replies' count
  renderThread(messages);
  const open = ui.thread ? ui.thread.ts : null;
  for (const node of $("messages").children) node.classList.toggle("thread-open", node.dataset.ts === open);
}

/* ---------- the app's Home tab ---------- */

const isHome = () => (currentConversation() || {}).kind === "home";

/** Slack tells the app the person opened its Home (app_home_opened); the app publishes it. */
function openHome() {
  post("/home", {});
}

/** The Home the app last published for the acting person, rendered from its Block Kit. */
function renderHome() {
  const list = $("messages");
  const home = ui.data.home;
  $("conversation-name").textContent = "approvals";
  const signature = JSON.stringify([ui.user, "home", home]);
  if (signature === ui.rendered.messages) return;
  const opened = ui.rendered.conversation !== "home" || ui.rendered.homeUser !== ui.user;
  Object.assign(ui.rendered, { messages: signature, conversation: "home", homeUser: ui.user, lastTs: "" });
  list.replaceChildren(home
    ? el("div", { className: "home", "data-view": home.id }, renderBlocks(home.view.blocks || []))
    : el("p", { className: "empty" }, "The app has not published a Home for you yet."));
  if (opened) list.scrollTop = 0;
}

async function onHomeClick(button) {
  const viewId = button.closest(".home").dataset.view;
  const { actionId, blockId } = button.dataset;
  button.disabled = true;
  await post("/click", { view_id: viewId, action_id: actionId, block_id: blockId || "" });
  button.disabled = false;
}

function renderMessages(messages) {
  const list = $("messages");
  const signature = JSON.stringify([ui.user, ui.selected, messages]);
  if (signature === ui.rendered.messages) return;
  const last = messages.length ? messages[messages.length - 1].ts : "";
  const scroll = ui.rendered.conversation !== ui.selected || ui.rendered.lastTs !== last;
  Object.assign(ui.rendered, { messages: signature, conversation: ui.selected, lastTs: last });
  if (!messages.length) list.replaceChildren(el("p", { className: "empty" }, "No messages yet."));
  else placeMessages(list, messages, (m) => renderMessage(m, { summary: true }));
  if (scroll) list.scrollTop = list.scrollHeight;
}

/** Unchanged messages keep their nodes (a button replaced under the pointer loses the click);
 * changed and new ones are rendered and put in order, and the rest removed. */
function placeMessages(list, messages, render = renderMessage) {
  const shown = new Map();
  for (const node of list.children) if (node.dataset.ts) shown.set(node.dataset.ts, node);
  messages.forEach((m, i) => {
    const json = JSON.stringify(m);
    let node = shown.get(m.ts);
    shown.delete(m.ts);
    if (!node || messageJson.get(node) !== json) {
      node = render(m);
      messageJson.set(node, json);
    }
    const here = list.children[i] || null;
    if (here !== node) list.insertBefore(node, here);
  });
  while (list.children.length > messages.length) list.lastElementChild.remove();
}

/** `summary`: under a parent, its thread's "N replies" (in the channel, not in the thread pane). */
function renderMessage(m, { summary = false } = {}) {
  const thread = summary && m.reply_count ? renderThreadSummary(m) : null;
  if (m.deleted) { // Slack's tombstone: what is left of a parent whose thread lives on
    return el("div", { className: "message deleted", "data-ts": m.ts, "data-channel": m.channel },
      el("div", { className: "avatar gone", "aria-hidden": "true" }, "🗑"),
      el("div", { className: "message-body" }, el("div", { className: "tombstone" }, m.text), thread));
  }
  const blocks = Array.isArray(m.blocks) ? m.blocks : [];
  const content = blocks.length ? renderBlocks(blocks) : el("div", { className: "mrkdwn", html: renderMrkdwn(m.text || "") });
  for (const button of content.querySelectorAll("button.bk-button")) {
    if (ui.pendingClicks.has(`${m.ts} ${button.dataset.actionId}`)) button.disabled = true;
  }
  const name = m.user_name || userName(m.user) || m.user || "?";
  return el("div", { className: m.ephemeral ? "message ephemeral" : "message", "data-ts": m.ts, "data-channel": m.channel },
    el("div", { className: m.from_bot ? "avatar bot" : "avatar", "aria-hidden": "true" }, name[0].toUpperCase()),
    el("div", { className: "message-body" },
      m.ephemeral ? el("div", { className: "ephemeral-note" }, "Only visible to you") : null,
      el("div", { className: "message-meta" },
        el("strong", { className: "author" }, name),
        m.from_bot ? el("span", { className: "app-tag" }, "APP") : null,
        el("time", {}, clockFromTs(m.ts))),
      content,
      thread));
}

/** Slack's line under a parent: who replied, "N replies", when the latest came; opens the thread. */
function renderThreadSummary(m) {
  const latest = dateFromTs(m.latest_reply);
  const when = isNaN(latest) ? "" : `Last reply ${relativeDay(latest) ?? latest.toLocaleDateString([], { month: "short", day: "numeric" })} at ${clock(latest)}`;
  const bot = ui.data && ui.data.bot ? ui.data.bot.id : null;
  const avatars = (m.reply_users || []).slice(0, 5).map((id) =>
    el("span", { className: id === bot ? "avatar small bot" : "avatar small", title: nameOf(id) }, nameOf(id)[0].toUpperCase()));
  return el("button", { type: "button", className: "thread-summary", "data-thread": m.ts },
    el("span", { className: "reply-avatars", "aria-hidden": "true" }, ...avatars),
    el("span", { className: "reply-count" }, repliesText(m.reply_count)),
    el("span", { className: "reply-when" }, when),
    el("span", { className: "reply-view" }, "View thread"));
}

/* ---------- the thread pane ---------- */

function openThread(channel, ts) {
  ui.thread = { channel, ts };
  renderConversation();
}

function closeThread() {
  ui.thread = null;
  renderConversation();
}

/**
 * The open thread beside the conversation: its parent on top, the replies under it. It stays
 * open across re-renders (unchanged messages keep their nodes, so the scroll stays where it
 * was; a new reply scrolls into view if the end was in view), and closes with its
 * conversation or when its parent goes.
 */
function renderThread(messages) {
  const pane = $("thread");
  const thread = ui.thread && ui.thread.channel === ui.selected ? ui.thread : null;
  const parent = thread && messages.find((m) => m.ts === thread.ts && !isReply(m));
  if (!parent) ui.thread = null;
  if (pane.hidden !== !parent) {
    stickToBottom($("messages"), () => { // the channel narrows or widens: keep its latest in view
      pane.hidden = !parent;
      document.querySelector(".layout").classList.toggle("thread-open", Boolean(parent));
    });
  }
  if (!parent) { Object.assign(ui.rendered, { thread: null, threadTs: null }); return; }
  const replies = messages.filter((m) => isReply(m) && m.thread_ts === parent.ts);
  const signature = JSON.stringify([ui.user, parent, replies]);
  if (signature === ui.rendered.thread) return;
  const opened = ui.rendered.threadTs !== parent.ts;
  const body = $("thread-body");
  stickToBottom(body, () => { // a new reply shows, unless older ones are being read
    $("thread-channel").textContent = (currentConversation() || {}).name || "";
    placeMessages($("thread-parent"), [parent]);
    $("thread-divider").textContent = replies.length ? repliesText(replies.length) : "No replies yet";
    placeMessages($("thread-replies"), replies);
  });
  if (opened) body.scrollTop = body.scrollHeight; // a thread opens on its latest replies
  Object.assign(ui.rendered, { thread: signature, threadTs: parent.ts });
}

/** Runs `change`; a list scrolled to its end before is scrolled to its end after. */
function stickToBottom(list, change) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 4;
  change();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

/** A button of a message, in the channel or in the thread pane (the same message can be in both). */
async function onMessageClick(event) {
  const inHome = event.target.closest(".home button.bk-button");
  if (inHome) { if (!inHome.disabled) await onHomeClick(inHome); return; }
  const summary = event.target.closest("button.thread-summary");
  if (summary) { openThread(summary.closest(".message").dataset.channel, summary.dataset.thread); return; }
  const button = event.target.closest("button.bk-button");
  const message = button && button.closest(".message");
  if (!message || button.disabled) return;
  const { ts, channel } = message.dataset;
  const actionId = button.dataset.actionId;
  const key = `${ts} ${actionId}`;
  const selector = `.message[data-ts="${CSS.escape(ts)}"] button.bk-button[data-action-id="${CSS.escape(actionId)}"]`;
  const copies = () => document.querySelectorAll(selector);
  ui.pendingClicks.add(key);
  for (const copy of copies()) copy.disabled = true;
  await post("/click", { channel, ts, action_id: actionId });
  ui.pendingClicks.delete(key);
  for (const copy of copies()) copy.disabled = false;
}

/* ---------- Block Kit ---------- */

const BLOCK_RENDERERS = {
  header: (b) => el("div", { className: "bk-header", html: renderText(b.text) }),
  section: renderSection,
  context: (b) => el("div", { className: "bk-context" },
    ...(b.elements || []).filter((e) => e && typeof e.text === "string").map((e) => el("span", { html: renderText(e) }))),
  divider: () => el("hr", { className: "bk-divider" }),
  actions: (b) => el("div", { className: "bk-actions" },
    ...(b.elements || []).filter((e) => e && e.type === "button").map((e) => renderButton(e, b.block_id))),
};

function renderBlocks(blocks) {
  const container = el("div", { className: "blocks" });
  for (const block of blocks || []) {
    if (!block || !Object.hasOwn(BLOCK_RENDERERS, block.type)) continue; // unknown: render nothing
    try { container.append(BLOCK_RENDERERS[block.type](block)); } catch { /* malformed block: skip */ }
  }
  return container;
}

function renderSection(b) {
  const section = el("div", { className: "bk-section" });
  if (b.text) section.append(el("div", { className: "bk-text", html: renderText(b.text) }));
  if (Array.isArray(b.fields) && b.fields.length) {
    section.append(el("div", { className: "bk-fields" }, ...b.fields.map((f) => el("div", { html: renderText(f) }))));
  }
  return section;
}

function renderButton(e, blockId) {
  const style = e.style === "primary" || e.style === "danger" ? ` ${e.style}` : "";
  const attrs = { type: "button", className: `bk-button${style}`, "data-action-id": e.action_id };
  if (blockId) attrs["data-block-id"] = blockId;
  return el("button", attrs, textOf(e.text));
}

function renderText(obj) {
  if (!obj || typeof obj.text !== "string") return "";
  return obj.type === "mrkdwn" ? renderMrkdwn(obj.text) : replaceEmoji(escapeHtml(obj.text));
}

/* ---------- mrkdwn ---------- */

const replaceEmoji = (html) =>
  html.replace(/:([a-z0-9_+-]+):/g, (code, name) => (Object.hasOwn(EMOJI, name) ? EMOJI[name] : code));

/** Code and <...> forms are set aside as placeholders before escaping, then put back at the end. */
function renderMrkdwn(text) {
  const stash = [];
  const keep = (html) => `\u0000${stash.push(html) - 1}\u0000`;
  let s = String(text ?? "").replace(/\u0000/g, "");
  s = s.replace(/```([\s\S]*?)```/g, (_, code) => keep(`<pre class="bk-pre">${escapeHtml(code.replace(/^\n/, ""))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${escapeHtml(code)}</code>`));
  s = s.replace(/<([^<>\n]+)>/g, (_, inner) => keep(renderAngle(inner)));
  s = replaceEmoji(escapeHtml(s));
  s = s.replace(/(^|[^\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])/g, "$1<b>$2</b>");
  s = s.replace(/(^|[^\w_])_(?!\s)([^_\n]+?)_(?![\w_])/g, "$1<i>$2</i>");
  s = s.replace(/(^|[^\w~])~(?!\s)([^~\n]+?)~(?![\w~])/g, "$1<s>$2</s>");
  return formatLines(s).replace(/\u0000(\d+)\u0000/g, (_, i) => stash[Number(i)]);
}

/** Newlines become <br>; consecutive lines starting with "&gt;" become one blockquote. */
function formatLines(html) {
  const lines = html.split("\n");
  let out = "";
  let quote = [];
  const flush = () => {
    if (quote.length) out += `<blockquote>${quote.join("<br>")}</blockquote>`;
    quote = [];
  };
  lines.forEach((line, i) => {
    if (line.startsWith("&gt;")) { quote.push(line.slice(4).replace(/^ /, "")); return; }
    flush();
    out += line + (i < lines.length - 1 ? "<br>" : "");
  });
  flush();
  return out;
}

function renderAngle(inner) {
  const bar = inner.indexOf("|");
  const target = bar < 0 ? inner : inner.slice(0, bar);
  const label = bar < 0 ? "" : inner.slice(bar + 1);
  if (target.startsWith("@")) {
    const id = target.slice(1);
    return `<span class="mention">@${escapeHtml(userName(id) || label || id)}</span>`;
  }
  if (target.startsWith("!date^")) return renderDate(target, label);
  if (/^(https?:|mailto:)/i.test(target)) {
    return `<a href="${escapeHtml(target)}" target="_blank" rel="noopener">${escapeHtml(label || target)}</a>`;
  }
  return escapeHtml(`<${inner}>`);
}

/** Slack's date tokens, in the reader's own time zone (times on a 24-hour clock, as the page's). */
const DATE_TOKENS = {
  date_num: (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
  date: (d) => d.toLocaleDateString([], { dateStyle: "long" }),
  date_short: (d) => d.toLocaleDateString([], { dateStyle: "medium" }),
  date_long: (d) => d.toLocaleDateString([], { dateStyle: "full" }),
  date_pretty: (d) => relativeDay(d) ?? DATE_TOKENS.date(d),
  date_short_pretty: (d) => relativeDay(d) ?? DATE_TOKENS.date_short(d),
  date_long_pretty: (d) => relativeDay(d) ?? DATE_TOKENS.date_long(d),
  time: clock,
  time_secs: (d) => `${clock(d)}:${pad(d.getSeconds())}`,
  ago: (d) => {
    const seconds = (d.getTime() - Date.now()) / 1000;
    const [unit, size] = [["day", 86_400], ["hour", 3_600], ["minute", 60]].find(([, n]) => Math.abs(seconds) >= n) || ["second", 1];
    return new Intl.RelativeTimeFormat([], { numeric: "auto" }).format(Math.round(seconds / size), unit);
  },
};

/** `<!date^SECONDS^FORMAT|fallback>`: the format's tokens filled in; the fallback as its title. */
function renderDate(target, fallback) {
  const match = /^!date\^(\d+)(?:\^([^^]*))?/.exec(target);
  const date = match ? new Date(Number(match[1]) * 1000) : null;
  if (!date || isNaN(date)) return escapeHtml(fallback);
  const format = match[2] || "{date_short} {time}";
  const shown = format.replace(/\{(\w+)\}/g, (token, name) => (Object.hasOwn(DATE_TOKENS, name) ? DATE_TOKENS[name](date) : token));
  return `<time datetime="${date.toISOString()}" title="${escapeHtml(fallback)}">${escapeHtml(shown)}</time>`;
}

/* ---------- composer and @mention autocomplete ---------- */

async function sendMessage() {
  const composer = $("composer");
  const text = composer.value.trim();
  if (!text || !ui.selected) return;
  composer.value = "";
  const result = await post("/send", { channel: ui.selected, text });
  if (!result && !composer.value) composer.value = text; // keep what was typed if sending failed
}

function onComposerKeydown(event) {
  if (handleMentionKeys(event)) return;
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
}

function updateMentions() {
  const composer = $("composer");
  const before = composer.value.slice(0, composer.selectionStart);
  const match = /(^|\s)@([\w.-]*)$/.exec(before);
  const prefix = (mention.prefix = match ? match[2].toLowerCase() : "");
  const users = (ui.data && ui.data.users) || [];
  mention.matches = match ? users.filter((u) => u.name.toLowerCase().startsWith(prefix)) : [];
  mention.start = match ? before.length - match[2].length - 1 : -1;
  renderMentions();
}

function renderMentions() {
  const list = $("mentions");
  list.hidden = mention.matches.length === 0;
  list.replaceChildren(...mention.matches.map((u, i) => el("li", { role: "option", "aria-selected": String(i === 0) },
    el("button", { type: "button", tabindex: "-1", "data-name": u.name }, `@${u.name}`, el("span", { className: "role" }, u.role)))));
}

function closeMentions() {
  mention.matches = [];
  renderMentions();
}

function insertMention(name) {
  const composer = $("composer");
  const end = composer.selectionStart;
  composer.value = `${composer.value.slice(0, mention.start)}@${name} ${composer.value.slice(end)}`;
  const caret = mention.start + name.length + 2;
  composer.focus();
  composer.setSelectionRange(caret, caret);
  closeMentions();
}

/** Enter or Tab inserts the first match, Escape closes the list; true when the key was used. */
function handleMentionKeys(event) {
  if (!mention.matches.length || !["Enter", "Tab", "Escape"].includes(event.key)) return false;
  const complete = mention.matches.some((u) => u.name.toLowerCase() === mention.prefix);
  if (event.key === "Enter" && complete) { closeMentions(); return false; } // a full name: Enter sends
  event.preventDefault();
  if (event.key === "Escape") closeMentions();
  else insertMention(mention.matches[0].name);
  return true;
}

/* ---------- modal ---------- */

function renderModal(entry) {
  let modal = $("modal");
  if (!entry || !entry.view) { if (modal) modal.remove(); return; }
  // A view the app replaced (response_action: update, views.update) has a new hash.
  if (!modal || modal.dataset.viewId !== String(entry.id) || modal.dataset.viewHash !== String(entry.view.hash)) {
    if (modal) modal.remove();
    modal = buildModal(entry);
    document.body.append(modal);
    const first = modal.querySelector(".modal-body input, .modal-body select, .modal-body textarea");
    if (first) first.focus();
  }
  updateModalErrors(entry);
}

function buildModal({ id, view }) {
  const cancel = el("button", { type: "button", id: "modal-cancel", className: "btn" }, textOf(view.close) || "Cancel");
  // As in Slack, a modal without `submit` (one that only shows something) has no submit button.
  const submit = view.submit ? el("button", { type: "submit", id: "modal-submit", className: "btn primary" }, textOf(view.submit)) : null;
  // novalidate: Slack's client checks the inputs (the built-in Slack does), not the browser.
  const form = el("form", { className: "modal-card", role: "dialog", "aria-modal": "true", "aria-labelledby": "modal-title", novalidate: true },
    el("h2", { id: "modal-title" }, textOf(view.title)),
    el("div", { className: "modal-body" }, ...(view.blocks || []).map(renderModalBlock)),
    el("div", { className: "modal-actions" }, cancel, submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (submit) submitModal(id);
  });
  cancel.addEventListener("click", () => cancelModal(id));
  return el("div", { id: "modal", className: "modal-overlay", "data-view-id": id, "data-view-hash": view.hash }, form);
}

function renderModalBlock(block) {
  if (!block || block.type !== "input") return renderBlocks([block]);
  const element = block.element || {};
  const inputId = `input-${block.block_id}`;
  const label = el("label", { id: `${inputId}-label`, for: inputId }, textOf(block.label),
    block.optional ? el("span", { className: "optional" }, " (optional)") : null);
  const keys = { id: inputId, "data-block-id": block.block_id, "data-action-id": element.action_id };
  const render = Object.hasOwn(INPUT_RENDERERS, element.type) ? INPUT_RENDERERS[element.type] : null;
  return el("div", { className: "modal-input", "data-input-block": block.block_id, "data-element": element.type },
    label,
    render ? el("div", { className: "input-control" }, render(element, keys)) : el("p", { className: "empty" }, `(${element.type} input)`),
    block.hint ? el("div", { className: "input-hint" }, textOf(block.hint)) : null);
}

/*
 * One renderer per Block Kit input element. The node carrying data-block-id is the one
 * whose entry is read on submit (inputValue): a field's own value, or for checkboxes and
 * multi-selects (data-kind) the values chosen in it.
 */
const INPUT_RENDERERS = {
  plain_text_input: (e, keys) => withValue(el(e.multiline ? "textarea" : "input", {
    ...keys, type: e.multiline ? null : "text", rows: e.multiline ? "4" : null,
    placeholder: textOf(e.placeholder) || null, maxlength: e.max_length, minlength: e.min_length,
  }), e.initial_value),
  // A text field, as Slack's: the browser's own number checks would pre-empt Slack's.
  number_input: (e, keys) => withValue(el("input", {
    ...keys, type: "text", inputmode: e.is_decimal_allowed ? "decimal" : "numeric",
    placeholder: textOf(e.placeholder) || null,
  }), e.initial_value),
  static_select: (e, keys) => selectOf(keys, e.placeholder, optionsOf(e), e.initial_option && e.initial_option.value),
  users_select: (e, keys) => selectOf(keys, e.placeholder, peopleOf(), e.initial_user),
  conversations_select: (e, keys) => selectOf(keys, e.placeholder, conversationsOf(), e.initial_conversation),
  multi_static_select: (e, keys) => multiSelect(keys, e.placeholder, optionsOf(e), (e.initial_options || []).map((o) => o.value)),
  multi_users_select: (e, keys) => multiSelect(keys, e.placeholder, peopleOf(), e.initial_users || []),
  checkboxes: renderCheckboxes,
  datepicker: (e, keys) => withValue(el("input", { ...keys, type: "date" }), e.initial_date),
  timepicker: (e, keys) => withValue(el("input", { ...keys, type: "time" }), e.initial_time),
  datetimepicker: (e, keys) => el("span", { className: "date-time" },
    withValue(el("input", { ...keys, type: "datetime-local", "data-kind": "unix" }), localFromUnix(e.initial_date_time)),
    el("span", { className: "unit" }, "UTC")),
};

function withValue(field, value) {
  field.value = value ?? "";
  return field;
}

const optionsOf = (e) => [...(e.options || []), ...(e.option_groups || []).flatMap((g) => g.options || [])]
  .map((o) => ({ value: o.value, text: textOf(o.text) }));
const peopleOf = () => ((ui.data && ui.data.users) || []).map((u) => ({ value: u.id, text: u.name }));
const conversationsOf = () => ((ui.data && ui.data.conversations) || []).map((c) => ({ value: c.id, text: c.name }));

/** A dropdown, as Slack's: the placeholder until something is chosen. */
function selectOf(keys, placeholder, choices, initial) {
  const select = el("select", keys,
    el("option", { value: "" }, textOf(placeholder) || "Select an item"),
    ...choices.map((c) => el("option", { value: c.value }, c.text)));
  select.value = choices.some((c) => c.value === initial) ? initial : "";
  select.classList.toggle("unset", !select.value);
  select.addEventListener("change", () => select.classList.toggle("unset", !select.value));
  return select;
}

/** Slack's multi-select: the chosen items as tokens (× removes one), a dropdown adds more. */
function multiSelect(keys, placeholder, choices, initial) {
  const { id, ...rest } = keys;
  const box = el("div", { ...rest, className: "multi-select", "data-kind": "multi", role: "group", "aria-labelledby": `${id}-label` });
  const tokens = el("ul", { className: "tokens" });
  const add = el("select", { id, className: "unset" });
  const chosen = new Set(initial.filter((v) => choices.some((c) => c.value === v)));
  const draw = () => {
    tokens.replaceChildren(...choices.filter((c) => chosen.has(c.value)).map((c) =>
      el("li", { className: "token", "data-value": c.value }, el("span", { className: "token-text" }, c.text),
        el("button", { type: "button", "aria-label": `Remove ${c.text}`, "data-remove": c.value }, "×"))));
    add.replaceChildren(el("option", { value: "" }, textOf(placeholder) || "Select items"),
      ...choices.filter((c) => !chosen.has(c.value)).map((c) => el("option", { value: c.value }, c.text)));
    add.value = "";
  };
  add.addEventListener("change", () => { if (add.value) chosen.add(add.value); draw(); });
  tokens.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-remove]");
    if (remove) { chosen.delete(remove.dataset.remove); draw(); add.focus(); }
  });
  draw();
  box.append(tokens, add);
  return box;
}

function renderCheckboxes(e, keys) {
  const { id, ...rest } = keys;
  const checked = new Set((e.initial_options || []).map((o) => o.value));
  return el("div", { ...rest, className: "checkboxes", "data-kind": "checkboxes", role: "group", "aria-labelledby": `${id}-label` },
    ...optionsOf(e).map((o, i) => {
      const box = el("input", { type: "checkbox", id: i ? `${id}-${i}` : id, value: o.value });
      box.checked = checked.has(o.value);
      return el("label", { className: "checkbox" }, box, ` ${o.text}`);
    }));
}

/** The browser's datetime-local value for a Unix time, read as UTC (as the forms' datetimes). */
function localFromUnix(seconds) {
  if (seconds === undefined || seconds === null || seconds === "") return "";
  const date = new Date(Number(seconds) * 1000);
  return isNaN(date) ? "" : date.toISOString().slice(0, 16);
}

/** What one input holds, as the built-in Slack takes it: text, or a list of chosen values. */
function inputValue(node) {
  const kind = node.dataset.kind;
  if (kind === "multi") return [...node.querySelectorAll(".token")].map((t) => t.dataset.value);
  if (kind === "checkboxes") return [...node.querySelectorAll("input:checked")].map((box) => box.value);
  if (kind === "unix") {
    const time = node.value ? Date.parse(`${node.value}Z`) : NaN;
    return isNaN(time) ? "" : String(Math.floor(time / 1000));
  }
  return node.value;
}

/** Shows each error (from the state or the last submit response) under its input. */
function updateModalErrors(entry) {
  const errors = { ...(ui.submitErrors[entry.id] || {}), ...(entry.errors || {}) };
  for (const wrapper of document.querySelectorAll("#modal .modal-input")) {
    const message = errors[wrapper.dataset.inputBlock];
    let line = wrapper.querySelector(".input-error");
    if (!message) { if (line) line.remove(); continue; }
    if (!line) { // under the input, above its hint, as in Slack
      line = el("div", { className: "input-error", role: "alert" });
      wrapper.insertBefore(line, wrapper.querySelector(".input-hint"));
    }
    line.textContent = message;
  }
}

async function submitModal(viewId) {
  const values = {};
  for (const field of document.querySelectorAll("#modal [data-block-id]")) {
    (values[field.dataset.blockId] ||= {})[field.dataset.actionId] = inputValue(field);
  }
  $("modal-submit").disabled = true;
  const result = await post("/submit", { view_id: viewId, values });
  const submit = $("modal-submit");
  if (submit) submit.disabled = false;
  ui.submitErrors[viewId] = (result && result.errors) || {};
  const entry = ((ui.data && ui.data.views) || []).find((v) => v.id === viewId) || { id: viewId };
  if ($("modal") && $("modal").dataset.viewId === String(viewId)) updateModalErrors(entry);
}

function cancelModal(viewId) {
  delete ui.submitErrors[viewId];
  post("/cancel", { view_id: viewId });
}

/* ---------- workflows panel ---------- */

function renderWorkflows(workflows) {
  const signature = JSON.stringify([workflows, ui.data.users]);
  if (signature === ui.rendered.workflows) return;
  ui.rendered.workflows = signature;
  const time = (w) => parseTime(w.created_at).getTime() || 0;
  const sorted = [...workflows].sort((a, b) => time(b) - time(a) || String(b.created_at).localeCompare(String(a.created_at)));
  $("workflow-list").replaceChildren(...(sorted.length ? sorted.map(renderWorkflow) : [el("p", { className: "empty" }, "No workflows yet.")]));
}

function renderWorkflow(w) {
  const summary = w.summary;
  const who = (id) => (userName(id) ? `@${userName(id)}` : id);
  const title = summary ? firstLine(summary.title, 160) : `${w.type} (its data no longer reads)`;
  const people = summary ? Object.entries(summary.people || {}) : [];
  const details = el("details", { className: "wf-detail", open: ui.openDetails.has(w.id) },
    el("summary", {}, "Details"),
    el("div", { className: "wf-meta" },
      el("code", { className: "wf-id", title: "approval-bot workflows show accepts this id, or its first characters" }, w.id),
      el("span", { className: "wf-type" }, `${w.type} · ${w.status}`)),
    w.problem ? el("div", { className: "wf-error" }, w.problem) : null,
    renderThreads(w.threads || []),
    ENDED.includes(w.status) && !w.error ? renderOutput(w) : null,
    renderHistory(w));
  details.addEventListener("toggle", () => {
    if (details.open) ui.openDetails.add(w.id);
    else ui.openDetails.delete(w.id);
  });
  return el("div", { className: "workflow", "data-workflow-id": w.id, "data-status": w.status, "data-outcome": w.outcome },
    el("div", { className: "wf-head" },
      el("span", { className: `badge outcome-${String(w.outcome).replace(/ /g, "-")}` }, w.outcome || w.status),
      el("span", { className: "wf-when" }, clockFromIso(w.created_at))),
    el("p", { className: "wf-title", title: summary ? summary.title : "" }, title),
    summary && summary.started_by ? el("p", { className: "wf-by" }, `asked by ${who(summary.started_by)}`) : null,
    people.length ? el("ul", { className: "wf-people" }, ...people.map(([id, answer]) =>
      el("li", { "data-user": id, "data-answer": answer }, `${who(id)} `, el("span", { className: "wf-answer" }, answer)))) : null,
    w.error ? el("div", { className: "wf-error" }, `${w.status === "cancelled" ? "Cancelled" : "Failed"}: ${w.error}`) : null,
    details);
}

function firstLine(text, limit) {
  const line = String(text || "").split("\n")[0];
  const more = line.length > limit || String(text || "").includes("\n");
  return (line.length > limit ? line.slice(0, limit - 1) : line) + (more ? "…" : "");
}

function renderThreads(threads) {
  if (!threads.length) return null;
  const event = (e) => el("li", {}, `${e.name}: ${e.status}`, e.error ? el("span", { className: "wf-error" }, ` ${e.error}`) : null);
  return el("ul", { className: "wf-threads" }, ...threads.map((t) => el("li", {}, `${t.id} → ${t.step ?? "?"} (${t.status})`,
    (t.events || []).length ? el("ul", { className: "wf-events" }, ...t.events.map(event)) : null)));
}

function renderOutput(w) {
  if (w.output === null || w.output === undefined) return null;
  return el("pre", { className: "wf-output" }, JSON.stringify(w.output, null, 2));
}

function renderHistory(w) {
  const history = w.history || [];
  const actor = (id) => (userName(id) ? `@${userName(id)}` : id);
  const line = (h) => [clockFromIso(h.created_at), h.kind, h.name, h.actor ? `by ${actor(h.actor)}` : ""].filter(Boolean).join(" ");
  const details = el("details", { className: "wf-history", open: ui.openHistories.has(w.id) },
    el("summary", {}, `History (${history.length})`),
    el("ol", {}, ...history.map((h) => el("li", { title: h.input === undefined ? null : JSON.stringify(h.input) }, line(h)))));
  details.addEventListener("toggle", () => {
    if (details.open) ui.openHistories.add(w.id);
    else ui.openHistories.delete(w.id);
  });
  return details;
}

/* ---------- webhooks panel ---------- */

function renderWebhooks(deliveries, failing) {
  $("failing").textContent = failing ? `The next ${failing === 1 ? "delivery gets" : `${failing} deliveries get`} 500.` : "";
  const signature = JSON.stringify(deliveries);
  if (signature === ui.rendered.webhooks) return;
  ui.rendered.webhooks = signature;
  $("webhook-list").replaceChildren(...(deliveries.length ? deliveries.map(renderDelivery)
    : [el("p", { className: "empty" }, "No webhooks yet. Webhook steps deliver here.")]));
}

function renderDelivery(d) {
  const outcome = d.status >= 200 && d.status < 300 ? "ok" : d.status >= 500 ? "failed" : "refused";
  const body = el("details", { className: "wh-body", open: ui.openBodies.has(d.id) },
    el("summary", {}, "Body"),
    el("pre", {}, typeof d.body === "string" ? d.body : JSON.stringify(d.body, null, 2)));
  body.addEventListener("toggle", () => {
    if (body.open) ui.openBodies.add(d.id);
    else ui.openBodies.delete(d.id);
  });
  return el("div", { className: "webhook", "data-name": d.name, "data-status": d.status, "data-attempt": d.attempt,
    "data-signed": String(d.signed), "data-duplicate": String(d.duplicate) },
    el("div", { className: "wf-head" },
      el("span", { className: `badge answer-${outcome}`, title: JSON.stringify(d.answer) }, String(d.status)),
      el("strong", { className: "wh-name" }, d.name),
      d.duplicate ? el("span", { className: "badge duplicate", title: "This key was delivered before: accepted, nothing done" }, "duplicate") : null,
      el("span", { className: "wf-when" }, clockFromIso(d.received_at))),
    el("div", { className: "wh-facts" },
      el("span", { className: d.signed ? "wh-signed good" : "wh-signed bad" }, d.signed ? "signature ✓" : "signature ✗"),
      el("span", { className: "wh-attempt" }, `attempt ${d.attempt}`)),
    d.idempotency_key ? el("code", { className: "wh-key", title: "Idempotency-Key: workflow id and step name" }, d.idempotency_key)
      : el("span", { className: "wh-key missing" }, "no Idempotency-Key"),
    body);
}

async function failDeliveries(event) {
  event.preventDefault();
  const count = Number($("fail-count").value);
  if (!Number.isInteger(count) || count < 0) { showNotice("Say how many deliveries should fail: 0 or more."); return; }
  await post("/webhooks/fail", { count });
}

/* ---------- start ---------- */

function listenForChanges() {
  const events = new EventSource(`${API}/events`);
  events.onmessage = () => refresh();
  events.onopen = () => refresh(); // catch up on anything missed while disconnected
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) setTimeout(listenForChanges, 2000); // the browser gave up
  };
}

function start() {
  $("acting-as").addEventListener("change", onActingAsChange);
  $("notice-close").addEventListener("click", () => { $("notice").hidden = true; });
  document.querySelector(".sidebar").addEventListener("click", (event) => {
    const button = event.target.closest("[data-conversation]");
    if (button) selectConversation(button.dataset.conversation);
  });
  $("messages").addEventListener("click", onMessageClick);
  $("thread-body").addEventListener("click", onMessageClick);
  $("thread-close").addEventListener("click", closeThread);
  $("app-tabs").addEventListener("click", (event) => { // Messages: the person's DM with the app
    if (!event.target.closest("[data-app-messages]")) return;
    const dm = ((ui.data && ui.data.conversations) || []).find((c) => c.kind === "dm" && c.with === ui.user);
    if (dm) selectConversation(dm.id);
  });
  $("webhook-fail").addEventListener("submit", failDeliveries);
  const composer = $("composer");
  composer.addEventListener("keydown", onComposerKeydown);
  composer.addEventListener("input", updateMentions);
  composer.addEventListener("blur", closeMentions);
  $("mentions").addEventListener("mousedown", (event) => event.preventDefault()); // keep the composer focused
  $("mentions").addEventListener("click", (event) => {
    const option = event.target.closest("[data-name]");
    if (option) insertMention(option.dataset.name);
  });
  listenForChanges();
  refresh();
}

document.addEventListener("DOMContentLoaded", start);
