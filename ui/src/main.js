// Parkway's operator console (docs/console.md): parked calls, lots, groups, rules, domains and users, live from
// the admin API's event stream. Preact + htm, no build-time JSX; every request goes to /api/... with the token.
import { h, render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { ApiError, enc, loadToken, makeApi, saveToken } from './api.js';
import { openEventStream } from './sse.js';
import './style.css';

const html = htm.bind(h);

const VIEWS = [
  ['parked', 'Parked calls'],
  ['lots', 'Lots'],
  ['groups', 'Groups'],
  ['rules', 'Rules'],
  ['domains', 'Domains'],
  ['users', 'Users'],
  ['events', 'Events'],
];

// ------------------------------------------------------------------------------------------------ helpers

function duration(ms) {
  if (ms == null || Number.isNaN(ms)) return '–';
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const hrs = Math.floor(s / 3600);
  s -= hrs * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const out = hrs ? `${hrs}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
  return neg ? `-${out}` : out;
}

function parkedOn(c) {
  return c.lot ? `${c.lot} / ${c.slot}` : c.extension;
}

function partyOf(c) {
  return c.parked_display ? `${c.parked_display} <${c.parked_uri}>` : c.parked_uri;
}

// Rules as the rules-file format (docs/engine.md "Rules file"): TAB-separated, with the header line.
const RULE_COLUMNS = ['id', 'domain', 'dpid', 'pr', 'match_op', 'match_exp', 'match_len', 'subst_exp', 'repl_exp',
  'attrs', 'disabled', 'continue'];
const MATCH_OPS = ['exact', 'regex', 'glob'];
function formatRules(rules) {
  const lines = [RULE_COLUMNS.join('\t')];
  for (const r of rules) {
    lines.push(RULE_COLUMNS.map((k) => {
      const v = r[k];
      if (k === 'match_op') return MATCH_OPS[v] ?? v;
      if (typeof v === 'boolean') return v ? '1' : '0';
      return v == null ? '' : String(v);
    }).join('\t'));
  }
  return lines.join('\n') + '\n';
}

// A domain picker's value: the first domain until one is picked (the list may arrive after the view opens).
function useDomain(domains) {
  const [domain, setDomain] = useState(domains[0] || '');
  useEffect(() => {
    if (!domain && domains[0]) setDomain(domains[0]);
  }, [domains]);
  return [domain, setDomain];
}

function useAsync(fn, deps) {
  const [state, setState] = useState({ loading: true, value: null, error: null });
  const reload = useCallback(() => {
    setState((s) => ({ ...s, loading: true }));
    return fn().then(
      (value) => setState({ loading: false, value, error: null }),
      (error) => setState({ loading: false, value: null, error }),
    );
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  return [state, reload];
}

// ------------------------------------------------------------------------------------------------ login

function Login({ onToken, refused }) {
  const [value, setValue] = useState('');
  return html`
    <main class="login">
      <h1>Parkway console</h1>
      <form onSubmit=${(e) => { e.preventDefault(); if (value.trim()) onToken(value.trim()); }}>
        <label for="token">Admin token <span class="hint">(admin.token in the daemon's config)</span></label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus
          value=${value} onInput=${(e) => setValue(e.currentTarget.value)} />
        <button type="submit">Sign in</button>
        ${refused && html`<p role="alert" class="error">The token was refused (401). Check admin.token.</p>`}
        <p class="hint">Kept in this tab's session storage only. Wall displays can open <code>/ui/#token=…</code>.</p>
      </form>
    </main>`;
}

// ------------------------------------------------------------------------------------------------ shared UI

function Notice({ notice, onClose }) {
  if (!notice) return null;
  return html`<div class=${`notice ${notice.kind}`} role=${notice.kind === 'error' ? 'alert' : 'status'}>
    <span class="notice-text">${notice.text}</span>
    <button type="button" class="link" onClick=${onClose} aria-label="Dismiss message">×</button>
  </div>`;
}

function DomainSelect({ domains, value, onChange, id, all }) {
  return html`<select id=${id} value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>
    ${all && html`<option value="">All domains</option>`}
    ${domains.map((d) => html`<option value=${d}>${d}</option>`)}
  </select>`;
}

// Stored rules have ids above 0; the generated feature-code defaults below 0; an edited rule not stored yet 0.
function ruleName(r) {
  return r.id > 0 ? `rule ${r.id}:` : r.id < 0 ? 'default:' : 'new rule:';
}

function ExplainResult({ ex }) {
  if (!ex) return null;
  const r = ex.result || {};
  const matched = (ex.trace || []).filter((t) => t.matched);
  return html`<dl class="explain" aria-label="Explain result">
    <dt>Action</dt><dd data-testid="explain-action">${r.action || '–'}</dd>
    ${ex.would_park_on !== undefined && html`<dt>Would park on</dt><dd data-testid="explain-park-on">${ex.would_park_on}</dd>`}
    ${ex.would_park_slot && html`<dt>Would park in</dt><dd>${ex.would_park_slot.lot} / ${ex.would_park_slot.slot}</dd>`}
    ${ex.would_retrieve && html`<dt>Would retrieve</dt><dd>call ${ex.would_retrieve.id} (${parkedOn(ex.would_retrieve)})</dd>`}
    ${ex.would_fail && ex.would_fail !== 'none' && html`<dt>Would fail</dt><dd class="error">${ex.would_fail}: ${ex.would_fail_message}</dd>`}
    <dt>Matched rules</dt><dd>${matched.length ? matched.map((t) => `${ruleName(t.rule)} ${t.rule.match_exp} → ${t.rule.attrs}`).join('; ') : 'none'}</dd>
    ${ex.recall && html`<dt>Recall</dt><dd>after ${ex.recall.recall_seconds}s, ${ex.recall.mode}</dd>`}
  </dl>`;
}

// ------------------------------------------------------------------------------------------------ parked calls

function MoveForm({ call, lots, act, onDone }) {
  const [kind, setKind] = useState('extension');
  const [ext, setExt] = useState('');
  const [lot, setLot] = useState(lots[0]?.name || '');
  const [slot, setSlot] = useState('');
  const id = `move-${call.id}`;
  const submit = async (e) => {
    e.preventDefault();
    const body = kind === 'extension' ? { extension: ext } : { lot, slot: slot ? Number(slot) : 0 };
    if (await act(`Call ${call.id} moved`, 'POST', `/api/parked/${call.id}/move`, body)) onDone();
  };
  return html`<form class="inline" onSubmit=${submit} aria-label=${`Move call ${call.id}`}>
    <label for=${`${id}-kind`}>Move to</label>
    <select id=${`${id}-kind`} value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
      <option value="extension">extension</option>
      <option value="slot">lot slot</option>
    </select>
    ${kind === 'extension'
      ? html`<label for=${`${id}-ext`} class="sr-only">Extension</label>
          <input id=${`${id}-ext`} size="6" required value=${ext} onInput=${(e) => setExt(e.currentTarget.value)} placeholder="104" />`
      : html`<label for=${`${id}-lot`} class="sr-only">Lot</label>
          <select id=${`${id}-lot`} value=${lot} onChange=${(e) => setLot(e.currentTarget.value)}>
            ${lots.map((l) => html`<option value=${l.name}>${l.name}</option>`)}
          </select>
          <label for=${`${id}-slot`} class="sr-only">Slot (empty = first free)</label>
          <input id=${`${id}-slot`} size="4" inputmode="numeric" value=${slot} onInput=${(e) => setSlot(e.currentTarget.value)} placeholder="any" />`}
    <button type="submit">Move</button>
    <button type="button" class="secondary" onClick=${onDone}>Cancel</button>
  </form>`;
}

function CallRow({ c, now, act, lots }) {
  const [moving, setMoving] = useState(false);
  const [confirmHangup, setConfirmHangup] = useState(false);
  const toRecall = c.recall_at ? c.recall_at - now : null;
  return html`
    <tr data-call-id=${c.id} class=${`state-${c.state}`}>
      <td data-label="Parked on" class="strong">${parkedOn(c)}${c.group && html` <span class="tag">group ${c.group}</span>`}</td>
      <td data-label="Parked party">${partyOf(c)}</td>
      <td data-label="Parker">${c.parker || '–'}</td>
      <td data-label="For" class="num" data-testid="parked-for">${duration(Math.max(0, now - c.parked_at))}</td>
      <td data-label="Recall in" class="num">${c.state === 'recalling' ? 'now' : duration(toRecall)}</td>
      <td data-label="Stage" class="num">${c.recall_stage}</td>
      <td data-label="State"><span class=${`badge ${c.state}`} data-testid="call-state">${c.state}</span></td>
      <td data-label="Actions" class="actions">
        <button type="button" onClick=${() => act(`Recall of call ${c.id} started`, 'POST', `/api/parked/${c.id}/recall`)}
          aria-label=${`Recall call ${c.id} on ${parkedOn(c)} now`}>Recall now</button>
        ${confirmHangup
          ? html`<button type="button" class="danger" onClick=${() => { setConfirmHangup(false); act(`Call ${c.id} hung up`, 'DELETE', `/api/parked/${c.id}`); }}
              aria-label=${`Confirm: hang up call ${c.id}`}>Confirm hang up</button>
             <button type="button" class="secondary" onClick=${() => setConfirmHangup(false)}>Keep</button>`
          : html`<button type="button" class="danger" onClick=${() => setConfirmHangup(true)} aria-label=${`Hang up call ${c.id}`}>Hang up</button>`}
        <button type="button" class="secondary" onClick=${() => setMoving(!moving)} aria-expanded=${moving}
          aria-label=${`Move call ${c.id}`}>Move</button>
        ${moving && html`<${MoveForm} call=${c} lots=${lots.filter((l) => l.domain === c.domain)} act=${act} onDone=${() => setMoving(false)} />`}
      </td>
    </tr>`;
}

function ParkedView({ calls, now, act, domains, lots }) {
  const [domain, setDomain] = useState('');
  const [lot, setLot] = useState('');
  const [group, setGroup] = useState('');
  const list = calls.filter((c) => (!domain || c.domain === domain) && (!lot || c.lot === lot) && (!group || c.group === group));
  const byDomain = {};
  for (const c of list) (byDomain[c.domain] ||= []).push(c);
  const lotNames = [...new Set(calls.map((c) => c.lot).filter(Boolean))];
  const groupNames = [...new Set(calls.map((c) => c.group).filter(Boolean))];
  return html`<section aria-labelledby="parked-h">
    <h2 id="parked-h">Parked calls <span class="count" data-testid="parked-count">${calls.length}</span></h2>
    <div class="filters">
      <label for="f-domain">Domain</label><${DomainSelect} id="f-domain" domains=${domains} value=${domain} onChange=${setDomain} all />
      <label for="f-lot">Lot</label>
      <select id="f-lot" value=${lot} onChange=${(e) => setLot(e.currentTarget.value)}><option value="">any</option>${lotNames.map((n) => html`<option>${n}</option>`)}</select>
      <label for="f-group">Group</label>
      <select id="f-group" value=${group} onChange=${(e) => setGroup(e.currentTarget.value)}><option value="">any</option>${groupNames.map((n) => html`<option>${n}</option>`)}</select>
    </div>
    ${list.length === 0 && html`<p class="empty">No parked calls.</p>`}
    ${Object.keys(byDomain).sort().map((d) => html`
      <h3>${d}</h3>
      <div class="table-wrap">
        <table class="calls" aria-label=${`Parked calls in ${d}`}>
          <thead><tr><th scope="col">Parked on</th><th scope="col">Parked party</th><th scope="col">Parker</th><th scope="col">For</th>
            <th scope="col">Recall in</th><th scope="col">Stage</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
          <tbody>${byDomain[d].map((c) => html`<${CallRow} key=${c.id} c=${c} now=${now} act=${act} lots=${lots} />`)}</tbody>
        </table>
      </div>`)}
  </section>`;
}

// ------------------------------------------------------------------------------------------------ lots

function LotsView({ api, calls, act, domains }) {
  const [state, reload] = useAsync(() => api('GET', '/api/lots'), []);
  const [lotDomain, setLotDomain] = useDomain(domains);
  const [form, setForm] = useState({ name: '', first: '', last: '', choice: 'first' });
  const lots = state.value?.lots || [];
  const save = async (e) => {
    e.preventDefault();
    const body = { first: Number(form.first), last: Number(form.last), choice: form.choice };
    if (await act(`Lot ${form.name} saved`, 'PUT', `/api/lots/${enc(lotDomain)}/${enc(form.name)}`, body)) reload();
  };
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  return html`<section aria-labelledby="lots-h">
    <h2 id="lots-h">Lots</h2>
    ${state.error && html`<p class="error" role="alert">${state.error.message}</p>`}
    ${lots.length === 0 && !state.loading && html`<p class="empty">No lots.</p>`}
    ${lots.map((l) => {
      const slots = [];
      for (let s = l.first_slot; s <= l.last_slot && slots.length < 500; s++) {
        const c = calls.find((x) => x.domain === l.domain && x.lot === l.name && x.slot === s);
        const st = !c ? 'free' : c.state === 'recalling' ? 'recalling' : 'occupied';
        slots.push(html`<li class=${`slot ${st}`} aria-label=${`Slot ${s}: ${st}${c ? `, ${partyOf(c)}` : ''}`} title=${c ? partyOf(c) : 'free'}>
          <span class="slot-no">${s}</span><span class="slot-who">${c ? c.parked_display || c.parked_uri : 'free'}</span></li>`);
      }
      return html`<article class="card">
        <header class="card-h"><h3>${l.name} <span class="hint">${l.domain} · ${l.first_slot}–${l.last_slot} · ${l.choice}</span></h3>
          <button type="button" class="danger" onClick=${async () => { if (await act(`Lot ${l.name} deleted`, 'DELETE', `/api/lots/${enc(l.domain)}/${enc(l.name)}`)) reload(); }}
            aria-label=${`Delete lot ${l.name}`}>Delete</button></header>
        <ul class="slots" aria-label=${`Slots of lot ${l.name}`}>${slots}</ul>
      </article>`;
    })}
    <form class="card form narrow" onSubmit=${save} aria-labelledby="lot-form-h">
      <h3 id="lot-form-h">Add or change a lot</h3>
      <label for="lot-domain">Domain</label><${DomainSelect} id="lot-domain" domains=${domains} value=${lotDomain} onChange=${setLotDomain} />
      <label for="lot-name">Name</label><input id="lot-name" required value=${form.name} onInput=${set('name')} />
      <label for="lot-first">First slot</label><input id="lot-first" required inputmode="numeric" value=${form.first} onInput=${set('first')} />
      <label for="lot-last">Last slot</label><input id="lot-last" required inputmode="numeric" value=${form.last} onInput=${set('last')} />
      <label for="lot-choice">Slot choice</label>
      <select id="lot-choice" value=${form.choice} onChange=${set('choice')}><option value="first">first free</option><option value="next">next free</option></select>
      <button type="submit">Save lot</button>
    </form>
  </section>`;
}

// ------------------------------------------------------------------------------------------------ groups

function GroupCard({ g, calls, act, onSaved }) {
  const [members, setMembers] = useState(g.members);
  const [add, setAdd] = useState('');
  const [dragFrom, setDragFrom] = useState(null);
  const [said, setSaid] = useState('');
  const listRef = useRef(null);
  useEffect(() => setMembers(g.members), [g]);
  const dirty = members.join('\n') !== g.members.join('\n');
  const move = (from, to) => {
    if (to < 0 || to >= members.length || from === to) return;
    const next = members.slice();
    const [m] = next.splice(from, 1);
    next.splice(to, 0, m);
    setMembers(next);
    setSaid(`${m} moved to position ${to + 1} of ${next.length}`);
    // Keep the keyboard focus on the member that moved.
    requestAnimationFrame(() => listRef.current?.querySelectorAll('li')[to]?.focus());
  };
  const onKey = (i) => (e) => {
    if (e.altKey && e.key === 'ArrowUp') { e.preventDefault(); move(i, i - 1); }
    else if (e.altKey && e.key === 'ArrowDown') { e.preventDefault(); move(i, i + 1); }
    else if (e.key === 'Delete') { e.preventDefault(); setMembers(members.filter((_, j) => j !== i)); }
  };
  const save = async () => {
    const s = g.settings || {};
    const body = { members, notify_parker: g.notify_parker };
    if (s.recall_seconds) body.recall_time = s.recall_seconds;
    if (s.mode) body.recall_mode = s.mode;
    if (s.alternate) body.alternate = s.alternate;
    if (s.occupied) body.occupied_policy = s.occupied;
    for (const k of ['ring_seconds', 'alternate_wait', 'retry_seconds']) if (s[k]) body[k] = s[k];
    if (await act(`Group ${g.name} saved`, 'PUT', `/api/groups/${enc(g.domain)}/${enc(g.name)}`, body)) onSaved();
  };
  const hintId = `group-${g.domain}-${g.name}-hint`;
  return html`<article class="card" data-group=${g.name}>
    <header class="card-h"><h3>${g.name} <span class="hint">${g.domain}</span></h3>
      <button type="button" class="danger" aria-label=${`Delete group ${g.name}`}
        onClick=${async () => { if (await act(`Group ${g.name} deleted`, 'DELETE', `/api/groups/${enc(g.domain)}/${enc(g.name)}`)) onSaved(); }}>Delete</button></header>
    <p id=${hintId} class="hint">Hunting order, first member first. Drag a member, or focus it and press Alt+↑ / Alt+↓; Delete removes it.</p>
    <ol class="members" ref=${listRef} aria-describedby=${hintId} aria-label=${`Members of group ${g.name}`}>
      ${members.map((m, i) => {
        const here = calls.filter((c) => c.domain === g.domain && c.extension === m && !c.lot);
        return html`<li key=${m} tabindex="0" draggable="true" data-member=${m}
            aria-label=${`${m}, position ${i + 1} of ${members.length}${here.length ? `, ${here.length} parked` : ''}`}
            class=${dragFrom === i ? 'dragging' : ''}
            onKeyDown=${onKey(i)}
            onDragStart=${(e) => { setDragFrom(i); e.dataTransfer.effectAllowed = 'move'; e.dataTransfer.setData('text/plain', m); }}
            onDragOver=${(e) => e.preventDefault()}
            onDrop=${(e) => { e.preventDefault(); if (dragFrom !== null) move(dragFrom, i); setDragFrom(null); }}
            onDragEnd=${() => setDragFrom(null)}>
          <span class="grip" aria-hidden="true">⋮⋮</span>
          <span class="member">${m}</span>
          <span class="parked-here">${here.map((c) => html`<span class="tag">${c.parked_display || c.parked_uri} · ${c.state}</span>`)}</span>
          <span class="reorder">
            <button type="button" class="icon" aria-label=${`Move ${m} up`} disabled=${i === 0} onClick=${() => move(i, i - 1)}>↑</button>
            <button type="button" class="icon" aria-label=${`Move ${m} down`} disabled=${i === members.length - 1} onClick=${() => move(i, i + 1)}>↓</button>
            <button type="button" class="icon" aria-label=${`Remove ${m}`} onClick=${() => setMembers(members.filter((_, j) => j !== i))}>✕</button>
          </span>
        </li>`;
      })}
    </ol>
    <p class="sr-only" aria-live="polite">${said}</p>
    <form class="inline" onSubmit=${(e) => { e.preventDefault(); if (add.trim() && !members.includes(add.trim())) setMembers([...members, add.trim()]); setAdd(''); }}>
      <label for=${`add-${g.domain}-${g.name}`}>Add member</label>
      <input id=${`add-${g.domain}-${g.name}`} size="8" value=${add} onInput=${(e) => setAdd(e.currentTarget.value)} />
      <button type="submit" class="secondary">Add</button>
    </form>
    <div class="buttons">
      <button type="button" onClick=${save} disabled=${!dirty}>Save group</button>
      <button type="button" class="secondary" onClick=${() => setMembers(g.members)} disabled=${!dirty}>Undo changes</button>
    </div>
  </article>`;
}

function ExplainForm({ api, domains, rulesText, idPrefix }) {
  const [domain, setDomain] = useDomain(domains);
  const [caller, setCaller] = useState('');
  const [dial, setDial] = useState('*58');
  const [ex, setEx] = useState(null);
  const [draft, setDraft] = useState(null);
  const [err, setErr] = useState('');
  const run = async (e) => {
    e.preventDefault();
    setErr('');
    try {
      setEx(await api('GET', `/api/explain?domain=${enc(domain)}&caller=${enc(caller)}&dial=${enc(dial)}`));
      setDraft(rulesText !== undefined
        ? (await api('POST', '/api/rules/check', { text: rulesText, domain, caller, dial })).explain : null);
    } catch (x) {
      setEx(null);
      setDraft(null);
      setErr(x.message);
    }
  };
  return html`<form class="card form" onSubmit=${run} aria-labelledby=${`${idPrefix}-h`}>
    <h3 id=${`${idPrefix}-h`}>Explain a dial string</h3>
    <label for=${`${idPrefix}-domain`}>Domain</label><${DomainSelect} id=${`${idPrefix}-domain`} domains=${domains} value=${domain} onChange=${setDomain} />
    <label for=${`${idPrefix}-caller`}>Caller</label><input id=${`${idPrefix}-caller`} value=${caller} onInput=${(e) => setCaller(e.currentTarget.value)} placeholder="1001" />
    <label for=${`${idPrefix}-dial`}>Dial</label><input id=${`${idPrefix}-dial`} required value=${dial} onInput=${(e) => setDial(e.currentTarget.value)} />
    <button type="submit">Explain</button>
    ${err && html`<p class="error" role="alert">${err}</p>`}
    ${draft && html`<h4>With the edited rules (not applied yet)</h4><${ExplainResult} ex=${draft} />`}
    ${ex && html`<h4>${rulesText !== undefined ? 'With the rules in force' : 'Result'}</h4><div data-testid=${`${idPrefix}-result`}><${ExplainResult} ex=${ex} /></div>`}
  </form>`;
}

function GroupsView({ api, calls, act, domains }) {
  const [state, reload] = useAsync(() => api('GET', '/api/groups'), []);
  const [groupDomain, setGroupDomain] = useDomain(domains);
  const [newGroup, setNewGroup] = useState({ name: '', members: '' });
  const groups = state.value?.groups || [];
  const create = async (e) => {
    e.preventDefault();
    const members = newGroup.members.split(/[\s,]+/).filter(Boolean);
    if (await act(`Group ${newGroup.name} saved`, 'PUT', `/api/groups/${enc(groupDomain)}/${enc(newGroup.name)}`, { members })) {
      setNewGroup({ ...newGroup, name: '', members: '' });
      reload();
    }
  };
  return html`<section aria-labelledby="groups-h">
    <h2 id="groups-h">Groups</h2>
    ${state.error && html`<p class="error" role="alert">${state.error.message}</p>`}
    <div class="grid">
      ${groups.map((g) => html`<${GroupCard} key=${`${g.domain}/${g.name}`} g=${g} calls=${calls} act=${act} onSaved=${reload} />`)}
      <form class="card form" onSubmit=${create} aria-labelledby="new-group-h">
        <h3 id="new-group-h">New group</h3>
        <label for="ng-domain">Domain</label><${DomainSelect} id="ng-domain" domains=${domains} value=${groupDomain} onChange=${setGroupDomain} />
        <label for="ng-name">Name</label><input id="ng-name" required value=${newGroup.name} onInput=${(e) => setNewGroup({ ...newGroup, name: e.currentTarget.value })} />
        <label for="ng-members">Members (in order)</label><input id="ng-members" value=${newGroup.members} placeholder="1001 1002 1003" onInput=${(e) => setNewGroup({ ...newGroup, members: e.currentTarget.value })} />
        <button type="submit">Create group</button>
      </form>
      <${ExplainForm} api=${api} domains=${domains} idPrefix="gexplain" />
    </div>
  </section>`;
}

// ------------------------------------------------------------------------------------------------ rules

function RulesView({ api, act, domains }) {
  const [state, reload] = useAsync(() => api('GET', '/api/rules'), []);
  const [text, setText] = useState(null);
  const [check, setCheck] = useState(null);
  const loaded = state.value ? formatRules(state.value.rules) : '';
  const current = text ?? loaded;
  const validate = async () => {
    setCheck(null);
    try {
      const r = await api('POST', '/api/rules/check', { text: current });
      setCheck({ ok: true, text: `Valid: ${r.rules} rule${r.rules === 1 ? '' : 's'}. Not applied yet.` });
    } catch (e) {
      setCheck({ ok: false, text: e.message });
    }
  };
  const apply = async () => {
    setCheck(null);
    if (await act('Rules applied', 'POST', '/api/rules', { text: current, replace: true })) {
      setText(null);
      reload();
    }
  };
  // A tab in the editor types a TAB (the format's separator); Escape first, then Tab, leaves the editor.
  const escaped = useRef(false);
  const onKey = (e) => {
    if (e.key === 'Escape') { escaped.current = true; return; }
    if (e.key === 'Tab' && !escaped.current && !e.shiftKey) {
      e.preventDefault();
      const t = e.currentTarget;
      const { selectionStart: a, selectionEnd: b } = t;
      const v = t.value.slice(0, a) + '\t' + t.value.slice(b);
      setText(v);
      requestAnimationFrame(() => { t.selectionStart = t.selectionEnd = a + 1; });
    }
    escaped.current = false;
  };
  return html`<section aria-labelledby="rules-h">
    <h2 id="rules-h">Dialplan rules</h2>
    ${state.error && html`<p class="error" role="alert">${state.error.message}</p>`}
    <div class="grid wide">
      <div class="card form">
        <label for="rules-text">Stored rules, rules-file format (TAB-separated; docs/engine.md). The default feature codes need no rule.</label>
        <p id="rules-hint" class="hint">Tab types a TAB; press Escape then Tab to leave the editor. Apply replaces every stored rule at once.</p>
        <textarea id="rules-text" aria-describedby="rules-hint" spellcheck="false" rows="12" value=${current}
          onInput=${(e) => { setText(e.currentTarget.value); setCheck(null); }} onKeyDown=${onKey}></textarea>
        <div class="buttons">
          <button type="button" onClick=${validate}>Validate</button>
          <button type="button" onClick=${apply} disabled=${text === null || text === loaded}>Apply</button>
          <button type="button" class="secondary" onClick=${() => { setText(null); setCheck(null); }} disabled=${text === null}>Discard edits</button>
        </div>
        ${check && html`<p class=${check.ok ? 'ok' : 'error'} role=${check.ok ? 'status' : 'alert'} data-testid="rules-check">${check.text}</p>`}
      </div>
      <${ExplainForm} api=${api} domains=${domains} rulesText=${current} idPrefix="rexplain" />
    </div>
  </section>`;
}

// ------------------------------------------------------------------------------------------------ domains

const DOMAIN_FIELDS = [
  ['park_code', 'Park code', 'text'],
  ['group_park_code', 'Group park code', 'text'],
  ['retrieve_code', 'Retrieve code', 'text'],
  ['recall_time', 'Recall after (s)', 'number'],
  ['max_parked', 'Max parked (0 = no cap)', 'number'],
  ['max_parked_per_extension', 'Max per extension (0 = no cap)', 'number'],
];

function DomainCard({ d, act, onSaved }) {
  const initial = () => ({
    park_code: d.park_code, group_park_code: d.group_park_code, retrieve_code: d.retrieve_code,
    recall_time: d.recall?.recall_seconds ?? '', max_parked: d.max_parked ?? 0,
    max_parked_per_extension: d.max_parked_per_extension ?? 0, occupied_policy: d.occupied, recall_mode: d.recall?.mode,
  });
  const [f, setF] = useState(initial);
  useEffect(() => setF(initial()), [d]);
  const id = (k) => `dom-${d.name}-${k}`;
  const save = async (e) => {
    e.preventDefault();
    const body = { ...f };
    for (const [k, , type] of DOMAIN_FIELDS) if (type === 'number') body[k] = Number(body[k]);
    if (await act(`Domain ${d.name} saved`, 'PUT', `/api/domains/${enc(d.name)}`, body)) onSaved();
  };
  return html`<form class="card form" onSubmit=${save} aria-label=${`Settings of ${d.name}`}>
    <h3>${d.name}</h3>
    ${DOMAIN_FIELDS.map(([k, label, type]) => html`<label for=${id(k)}>${label}</label>
      <input id=${id(k)} type=${type} value=${f[k]} onInput=${(e) => setF({ ...f, [k]: e.currentTarget.value })} />`)}
    <label for=${id('occ')}>When the extension is occupied</label>
    <select id=${id('occ')} value=${f.occupied_policy} onChange=${(e) => setF({ ...f, occupied_policy: e.currentTarget.value })}>
      <option value="stack">stack</option><option value="reject">reject</option></select>
    <label for=${id('mode')}>Recall mode</label>
    <select id=${id('mode')} value=${f.recall_mode} onChange=${(e) => setF({ ...f, recall_mode: e.currentTarget.value })}>
      <option value="parker">parker</option><option value="parker_then_alternate">parker, then alternate</option>
      <option value="alternate_only">alternate only</option></select>
    <button type="submit">Save ${d.name}</button>
  </form>`;
}

function DomainsView({ api, act, onChanged }) {
  const [state, reload] = useAsync(() => api('GET', '/api/domains'), []);
  const saved = () => { reload(); onChanged(); };
  return html`<section aria-labelledby="domains-h">
    <h2 id="domains-h">Domains</h2>
    ${state.error && html`<p class="error" role="alert">${state.error.message}</p>`}
    <div class="grid">${(state.value?.domains || []).map((d) => html`<${DomainCard} key=${d.name} d=${d} act=${act} onSaved=${saved} />`)}</div>
  </section>`;
}

// ------------------------------------------------------------------------------------------------ users

function UsersView({ api, act, domains }) {
  const [domain, setDomain] = useDomain(domains);
  const [state, reload] = useAsync(() => (domain ? api('GET', `/api/users/${enc(domain)}`) : Promise.resolve([])), [domain]);
  const [form, setForm] = useState({ user: '', password: '', register_for: '' });
  const save = async (e) => {
    e.preventDefault();
    const body = { password: form.password, register_for: form.register_for.split(/[\s,]+/).filter(Boolean) };
    if (await act(`User ${form.user} saved`, 'PUT', `/api/users/${enc(domain)}/${enc(form.user)}`, body)) {
      setForm({ user: '', password: '', register_for: '' });
      reload();
    }
  };
  const users = Array.isArray(state.value) ? state.value : [];
  return html`<section aria-labelledby="users-h">
    <h2 id="users-h">SIP users</h2>
    <div class="filters"><label for="u-domain">Domain</label><${DomainSelect} id="u-domain" domains=${domains} value=${domain} onChange=${setDomain} /></div>
    ${state.error && html`<p class="error" role="alert">${state.error.message}</p>`}
    <div class="table-wrap"><table aria-label=${`Users of ${domain}`}>
      <thead><tr><th scope="col">User</th><th scope="col">May register for</th><th scope="col">Hashes</th><th scope="col">Actions</th></tr></thead>
      <tbody>${users.map((u) => html`<tr><td>${u.user}</td><td>${(u.register_for || []).join(', ') || '–'}</td><td>${(u.algorithms || []).join(', ')}</td>
        <td><button type="button" class="danger" aria-label=${`Delete user ${u.user}`}
          onClick=${async () => { if (await act(`User ${u.user} deleted`, 'DELETE', `/api/users/${enc(domain)}/${enc(u.user)}`)) reload(); }}>Delete</button></td></tr>`)}</tbody>
    </table></div>
    ${users.length === 0 && !state.loading && !state.error && html`<p class="empty">No users in ${domain}.</p>`}
    <form class="card form narrow" onSubmit=${save} aria-labelledby="user-form-h">
      <h3 id="user-form-h">Add a user or change a password</h3>
      <label for="u-user">User</label><input id="u-user" required value=${form.user} onInput=${(e) => setForm({ ...form, user: e.currentTarget.value })} />
      <label for="u-pass">Password</label><input id="u-pass" type="password" autocomplete="new-password" required value=${form.password} onInput=${(e) => setForm({ ...form, password: e.currentTarget.value })} />
      <label for="u-for">May register for (other users)</label><input id="u-for" value=${form.register_for} onInput=${(e) => setForm({ ...form, register_for: e.currentTarget.value })} />
      <button type="submit">Save user</button>
    </form>
  </section>`;
}

// ------------------------------------------------------------------------------------------------ events

function EventsView({ events }) {
  return html`<section aria-labelledby="events-h">
    <h2 id="events-h">Recent events</h2>
    ${events.length === 0 && html`<p class="empty">No events since this page opened.</p>`}
    <ol class="events" reversed>
      ${events.map((e) => html`<li key=${e.seq}><time>${new Date(e.at).toLocaleTimeString()}</time>
        <span class=${`badge ${e.type}`}>${e.type}</span>
        <span>${e.call ? `call ${e.call.id} · ${e.call.domain} · ${parkedOn(e.call)} · ${partyOf(e.call)}${e.call.parker ? ` · parker ${e.call.parker}` : ''}` : ''}</span></li>`)}
    </ol>
  </section>`;
}

// ------------------------------------------------------------------------------------------------ app

function Console({ token, onLogout, onRefused }) {
  const api = useMemo(() => makeApi(token, onRefused), [token]);
  const [view, setView] = useState(() => new URLSearchParams(location.hash.slice(1)).get('view') || 'parked');
  const [calls, setCalls] = useState(new Map());
  const [events, setEvents] = useState([]);
  const [status, setStatus] = useState('connecting');
  const [notice, setNotice] = useState(null);
  const [now, setNow] = useState(Date.now());
  const [domains, setDomains] = useState([]);
  const [lots, setLots] = useState([]);
  const gone = useRef(new Set());

  const loadDomains = useCallback(() => {
    api('GET', '/api/domains').then((r) => setDomains(r.domains.map((d) => d.name)), () => {});
    api('GET', '/api/lots').then((r) => setLots(r.lots), () => {});
  }, [api]);
  useEffect(loadDomains, [loadDomains]);

  // The clock for "for" and "recall in" (display only: the data comes from the event stream).
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);

  useEffect(() => openEventStream({
    token,
    onStatus: (s) => { setStatus(s); if (s === 'unauthorized') onRefused(); },
    // After every (re)connection: the state now (events are not replayed); later events win by version.
    onOpen: () => {
      api('GET', '/api/parked').then((r) => setCalls((old) => {
        const next = new Map();
        for (const c of r.parked) {
          if (gone.current.has(c.id)) continue;
          const o = old.get(c.id);
          next.set(c.id, o && o.version > c.version ? o : c);
        }
        return next;
      }), (e) => setNotice({ kind: 'error', text: e.message }));
    },
    onEvent: (type, ev, id) => {
      if (!ev || !ev.call) return;
      const c = ev.call;
      setNow(Date.now());
      setCalls((old) => {
        const next = new Map(old);
        if (c.state === 'gone' || type === 'retrieved' || type === 'abandoned') {
          next.delete(c.id);
          gone.current.add(c.id);
        } else {
          const o = old.get(c.id);
          if (!o || !(o.version > c.version)) next.set(c.id, { ...o, ...c });
        }
        return next;
      });
      setEvents((old) => [{ seq: Number(id) || ev.sequence, type, at: ev.at || Date.now(), call: c }, ...old].slice(0, 100));
    },
  }), [token]);

  // Runs an action; shows the server's error text when it fails. Resolves to true on success.
  const act = useCallback(async (okText, method, path, body) => {
    try {
      await api(method, path, body);
      setNotice({ kind: 'ok', text: okText });
      return true;
    } catch (e) {
      setNotice({ kind: 'error', text: e instanceof ApiError ? e.message : String(e) });
      return false;
    }
  }, [api]);

  const list = [...calls.values()].sort((a, b) => a.parked_at - b.parked_at);
  const props = { api, act, domains, calls: list, now, lots };
  return html`
    <header class="top">
      <h1>Parkway</h1>
      <p class=${`status ${status}`} role="status" data-testid="stream-status">${status === 'live' ? 'live' : status}</p>
      <button type="button" class="secondary" onClick=${onLogout}>Sign out</button>
    </header>
    <nav aria-label="Views"><ul class="tabs">
      ${VIEWS.map(([k, label]) => html`<li><button type="button" aria-current=${view === k ? 'page' : undefined}
        class=${view === k ? 'tab active' : 'tab'} onClick=${() => setView(k)}>${label}${k === 'parked' ? ` (${list.length})` : ''}</button></li>`)}
    </ul></nav>
    <${Notice} notice=${notice} onClose=${() => setNotice(null)} />
    <main>
      ${view === 'parked' && html`<${ParkedView} ...${props} />`}
      ${view === 'lots' && html`<${LotsView} ...${props} />`}
      ${view === 'groups' && html`<${GroupsView} ...${props} />`}
      ${view === 'rules' && html`<${RulesView} ...${props} />`}
      ${view === 'domains' && html`<${DomainsView} ...${props} onChanged=${loadDomains} />`}
      ${view === 'users' && html`<${UsersView} ...${props} />`}
      ${view === 'events' && html`<${EventsView} events=${events} />`}
    </main>`;
}

function App() {
  const [token, setToken] = useState(loadToken);
  const [refused, setRefused] = useState(false);
  if (!token) return html`<${Login} refused=${refused} onToken=${(t) => { saveToken(t); setRefused(false); setToken(t); }} />`;
  return html`<${Console} key=${token} token=${token}
    onLogout=${() => { saveToken(''); setToken(''); }}
    onRefused=${() => { saveToken(''); setRefused(true); setToken(''); }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
