// The host's helper inside a page. It is evaluated in an ISOLATED world
// (Page.createIsolatedWorld), never in the page's main world: page scripts
// cannot see `globalThis.__hyperagents`, cannot replace its functions, and the
// page DOM is never modified (refs live in this world's own maps, not in
// attributes). Every entry point returns `{ok: value}` or `{error: message}`
// so that the host never has to parse exceptions.
(() => {
  if (globalThis.__hyperagents) return true;

  const SKIPPED_TAGS = new Set([
    'script', 'style', 'noscript', 'template', 'head', 'meta', 'link', 'title', 'base',
  ]);
  // Elements whose whole visible text is their label: their descendants are
  // listed only when interactive, so text is not repeated.
  const AGGREGATING_TAGS = new Set(['a', 'button', 'summary', 'option', 'label']);
  const INTERACTIVE_TAGS = new Set(['a', 'button', 'input', 'select', 'textarea', 'summary']);
  const INTERACTIVE_ROLES = new Set([
    'button', 'link', 'checkbox', 'radio', 'tab', 'menuitem', 'menuitemcheckbox',
    'menuitemradio', 'option', 'switch', 'textbox', 'combobox', 'slider', 'spinbutton',
    'treeitem', 'searchbox', 'listbox',
  ]);
  const SVG_SHAPES = new Set([
    'circle', 'rect', 'ellipse', 'polygon', 'polyline', 'path', 'line', 'text',
  ]);
  const TEXT_INPUT_TYPES = new Set([
    'text', 'search', 'email', 'url', 'tel', 'password', 'number', '',
  ]);
  // Inputs whose value is not typed key by key in Chromium (or is locale
  // dependent): the host sets their value and fires input/change instead.
  const VALUE_INPUT_TYPES = new Set([
    'date', 'time', 'datetime-local', 'month', 'week', 'color', 'range',
  ]);

  let refs = new Map();
  let refOf = new WeakMap();
  let nextRef = 1;

  // Cross-document navigations this document started since a click was last
  // aimed (`point`), from the Navigation API's `navigate` event, which fires
  // while the click is handled: the host then waits for the new document
  // instead of waiting a fixed time for one to be announced. `null`: no API.
  let navigationsStarted = null;
  if (globalThis.navigation && typeof globalThis.navigation.addEventListener === 'function') {
    navigationsStarted = 0;
    globalThis.navigation.addEventListener('navigate', (event) => {
      if (!event.destination.sameDocument && !event.downloadRequest) navigationsStarted += 1;
    });
  }

  const collapse = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const clip = (s, max) => (s.length > max ? s.slice(0, max) + '…' : s);

  function refFor(el) {
    let ref = refOf.get(el);
    if (ref === undefined) {
      ref = nextRef++;
      refOf.set(el, ref);
      refs.set(ref, el);
    }
    return ref;
  }

  function lookup(ref) {
    const el = refs.get(ref);
    if (el === undefined) {
      throw new Error(`unknown ref ${ref}: use a ref from the latest observation`);
    }
    if (!el.isConnected) {
      throw new Error(`element [${ref}] is no longer on the page: observe again`);
    }
    return el;
  }

  function styleOf(el) {
    const view = el.ownerDocument.defaultView || window;
    return view.getComputedStyle(el);
  }

  // Offset of the element's document inside the top-level viewport (same-origin
  // iframes only).
  function frameOffset(el) {
    let x = 0;
    let y = 0;
    let view = el.ownerDocument.defaultView;
    while (view && view.frameElement) {
      const frame = view.frameElement;
      const rect = frame.getBoundingClientRect();
      x += rect.left + frame.clientLeft;
      y += rect.top + frame.clientTop;
      view = frame.ownerDocument.defaultView;
    }
    return { x, y };
  }

  function deepActiveElement() {
    let active = document.activeElement;
    for (;;) {
      if (active && active.shadowRoot && active.shadowRoot.activeElement) {
        active = active.shadowRoot.activeElement;
      } else if (active && active.localName === 'iframe') {
        try {
          const inner = active.contentDocument && active.contentDocument.activeElement;
          if (!inner || inner === active.contentDocument.body) break;
          active = inner;
        } catch (_) {
          break;
        }
      } else {
        break;
      }
    }
    return active;
  }

  function ownText(el) {
    let text = '';
    for (let node = el.firstChild; node; node = node.nextSibling) {
      if (node.nodeType === 3) text += ' ' + node.data;
    }
    return collapse(text);
  }

  function labelOf(el) {
    if (el.labels && el.labels.length > 0) {
      return collapse(Array.from(el.labels, (l) => l.innerText).join(' '));
    }
    return '';
  }

  function isScrollable(el, style) {
    if (el.localName === 'textarea') return el.scrollHeight > el.clientHeight + 1;
    const overflowY = style.overflowY;
    return (overflowY === 'auto' || overflowY === 'scroll') && el.scrollHeight > el.clientHeight + 1;
  }

  function scrollPosition(el) {
    if (el.scrollTop <= 1) return 'top';
    if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1) return 'bottom';
    return 'middle';
  }

  function isInteractive(el, tag) {
    if (INTERACTIVE_TAGS.has(tag)) return true;
    if (el.isContentEditable && (el.parentElement === null || !el.parentElement.isContentEditable)) {
      return true;
    }
    const role = el.getAttribute('role');
    if (role && INTERACTIVE_ROLES.has(role)) return true;
    return el.hasAttribute('onclick') || el.hasAttribute('tabindex');
  }

  // Not a link, button or form control, but clickable: an inline `onclick`,
  // or a pointer cursor (how pages mark things like MiniWoB's `span.alink`),
  // counted only where the cursor starts, not on descendants inheriting it.
  function isClickable(el, tag, style) {
    if (INTERACTIVE_TAGS.has(tag) || el.getAttribute('role')) return false;
    if (el.hasAttribute('onclick')) return true;
    if (style.cursor !== 'pointer') return false;
    const parent = el.parentElement;
    return !parent || styleOf(parent).cursor !== 'pointer';
  }

  // Whether the element's line carries all its visible text (descendants are
  // then listed only when interactive). Clickable containers aggregate only
  // while short, so a clickable card does not swallow a whole page.
  function aggregates(el, tag, style) {
    if (AGGREGATING_TAGS.has(tag)) return true;
    if (!isClickable(el, tag, style)) return false;
    return collapse(el.innerText).length <= 200;
  }

  // One element as the host sees it, or null when it carries nothing for an
  // agent (a plain layout container).
  function describe(el, tag, style, rect, offset, insideAggregate, active, options) {
    const interactive = isInteractive(el, tag);
    if (insideAggregate && !interactive) return null;
    const info = { ref: 0, tag };
    const role = el.getAttribute('role');
    if (role) info.role = role;
    let notable = interactive;

    if (tag === 'input') {
      const type = (el.getAttribute('type') || 'text').toLowerCase();
      if (type === 'hidden') return null;
      info.type = type;
      if (type === 'checkbox' || type === 'radio') {
        info.checked = el.checked;
      } else if (type !== 'button' && type !== 'submit' && type !== 'reset' && type !== 'file') {
        info.value = type === 'password' ? '•'.repeat(el.value.length) : el.value;
      } else if (el.value) {
        info.text = el.value;
      }
      const label = labelOf(el);
      if (label) info.label = clip(label, options.maxText);
      if (el.placeholder) info.placeholder = el.placeholder;
    } else if (tag === 'textarea') {
      info.value = clip(el.value, options.maxText);
      const label = labelOf(el);
      if (label) info.label = clip(label, options.maxText);
      if (el.placeholder) info.placeholder = el.placeholder;
    } else if (tag === 'select') {
      const selected = Array.from(el.selectedOptions, (o) => collapse(o.text));
      info.value = selected.join(', ');
      info.options = Array.from(el.options, (o) => clip(collapse(o.text), 60));
      if (el.multiple) info.multiple = true;
      const label = labelOf(el);
      if (label) info.label = clip(label, options.maxText);
    } else if (aggregates(el, tag, style)) {
      const text = collapse(el.innerText);
      if (text) info.text = clip(text, options.maxText);
      notable = notable || Boolean(text);
    } else if (tag === 'img') {
      const alt = collapse(el.getAttribute('alt'));
      if (alt) info.text = clip(alt, options.maxText);
      notable = true;
    } else if (tag === 'canvas') {
      notable = true;
    } else if (el.isContentEditable) {
      info.value = clip(collapse(el.innerText), options.maxText);
    } else if (tag === 'text' && el instanceof SVGElement) {
      const text = collapse(el.textContent);
      if (text) info.text = clip(text, options.maxText);
    } else {
      const text = ownText(el);
      if (text) {
        info.text = clip(text, options.maxText);
        notable = true;
      }
    }
    const aria = el.getAttribute('aria-label');
    if (aria && !info.text && !info.label) info.label = clip(collapse(aria), options.maxText);
    const title = el.getAttribute('title');
    if (title && !info.text && !info.label) info.label = clip(collapse(title), options.maxText);

    if (el instanceof SVGElement) {
      if (SVG_SHAPES.has(tag)) notable = true;
      const fill = el.getAttribute('fill') || el.style.fill;
      const stroke = el.getAttribute('stroke') || el.style.stroke;
      if (fill) info.fill = fill;
      if (stroke) info.stroke = stroke;
    } else if (el.style) {
      // Inline colours only: they are what colour tasks set, and computed
      // colours would add noise to every element.
      if (el.style.color) info.color = el.style.color;
      if (el.style.backgroundColor) info.background = el.style.backgroundColor;
      if (info.color || info.background) notable = true;
    }
    if (isClickable(el, tag, style)) {
      info.clickable = true;
      notable = true;
    }
    if (el.disabled) info.disabled = true;
    if (el === active) {
      info.focused = true;
      notable = true;
    }
    if (isScrollable(el, style)) {
      info.scroll = scrollPosition(el);
      notable = true;
    }
    if (!notable) return null;
    if (!info.text && !info.label && !info.placeholder && el.id) info.id = el.id;
    info.x = Math.round(rect.left + offset.x);
    info.y = Math.round(rect.top + offset.y);
    info.w = Math.round(rect.width);
    info.h = Math.round(rect.height);
    info.ref = refFor(el);
    return info;
  }

  function walk(parent, offset, insideAggregate, state) {
    const children = parent.children || [];
    for (let i = 0; i < children.length; i++) {
      visit(children[i], offset, insideAggregate, state);
    }
  }

  function visit(el, offset, insideAggregate, state) {
    const tag = el.localName;
    if (SKIPPED_TAGS.has(tag)) return;
    if (state.exclude && el.matches(state.exclude)) return;
    const style = styleOf(el);
    if (style.display === 'none' || style.opacity === '0') return;
    const rect = el.getBoundingClientRect();
    const shown =
      style.visibility !== 'hidden' && style.visibility !== 'collapse' && rect.width > 0 && rect.height > 0;
    let info = null;
    // A label wrapping its control is described by the control (`label=`).
    const labelWithControl = tag === 'label' && el.querySelector('input,select,textarea') !== null;
    if (shown && !labelWithControl) {
      info = describe(el, tag, style, rect, offset, insideAggregate, state.active, state.options);
      if (info) state.out.push(info);
    }
    if (tag === 'select') return; // options are listed on the select itself
    const aggregate = insideAggregate || (info !== null && aggregates(el, tag, style));
    if (el.shadowRoot) walk(el.shadowRoot, offset, aggregate, state);
    if (tag === 'iframe') {
      let doc = null;
      try {
        doc = el.contentDocument;
      } catch (_) {
        doc = null; // cross-origin: not observable
      }
      if (doc && doc.body) {
        const inner = { x: offset.x + rect.left + el.clientLeft, y: offset.y + rect.top + el.clientTop };
        visit(doc.body, inner, false, state);
      }
      return;
    }
    walk(el, offset, aggregate, state);
  }

  function inViewport(el) {
    const rect = el.getBoundingClientRect();
    const offset = frameOffset(el);
    const left = rect.left + offset.x;
    const top = rect.top + offset.y;
    return left >= 0 && top >= 0 && left + rect.width <= window.innerWidth && top + rect.height <= window.innerHeight;
  }

  function shortDescription(el) {
    const tag = el.localName;
    const text = clip(collapse(el.innerText || el.textContent || ''), 40);
    const ref = refOf.get(el);
    return (ref !== undefined ? `[${ref}] ` : '') + tag + (text ? ` "${text}"` : '');
  }

  function point(ref, scroll) {
    const el = lookup(ref);
    if (navigationsStarted !== null) navigationsStarted = 0;
    if (scroll && !inViewport(el)) {
      el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
    }
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) {
      throw new Error(`element [${ref}] is not visible`);
    }
    const offset = frameOffset(el);
    const x = rect.left + offset.x + rect.width / 2;
    const y = rect.top + offset.y + rect.height / 2;
    if (x < 0 || y < 0 || x >= window.innerWidth || y >= window.innerHeight) {
      return { x, y, inside: false, covered: null };
    }
    const cover = coverAt(el, x, y);
    if (cover === null) return { x, y, inside: true, covered: null };
    // The centre is covered (overlapping elements): like a person, aim at a
    // part of the element that is still visible.
    for (const fy of [0.5, 0.25, 0.75, 0.1, 0.9]) {
      for (const fx of [0.5, 0.25, 0.75, 0.1, 0.9]) {
        const px = rect.left + offset.x + rect.width * fx;
        const py = rect.top + offset.y + rect.height * fy;
        if (px < 0 || py < 0 || px >= window.innerWidth || py >= window.innerHeight) continue;
        if (coverAt(el, px, py) === null) return { x: px, y: py, inside: true, covered: null };
      }
    }
    return { x, y, inside: true, covered: cover };
  }

  // What a real click at (x, y) would reach instead of `el`, described; null
  // when it reaches `el` (or its content, or its label).
  function coverAt(el, x, y) {
    let hit = document.elementFromPoint(x, y);
    while (hit && hit.localName === 'iframe') {
      try {
        const frameRect = hit.getBoundingClientRect();
        const inner = hit.contentDocument.elementFromPoint(
          x - frameRect.left - hit.clientLeft,
          y - frameRect.top - hit.clientTop,
        );
        if (!inner || inner === hit) break;
        hit = inner;
      } catch (_) {
        break;
      }
    }
    if (!hit || hit === el || el.contains(hit) || hit.contains(el)) return null;
    if (el.labels && Array.from(el.labels).includes(hit)) return null;
    return shortDescription(hit);
  }

  function editableKind(el) {
    const tag = el.localName;
    if (tag === 'textarea') return 'keys';
    if (tag === 'input') {
      const type = (el.getAttribute('type') || 'text').toLowerCase();
      if (TEXT_INPUT_TYPES.has(type)) return 'keys';
      if (VALUE_INPUT_TYPES.has(type)) return 'value';
      return null;
    }
    if (el.isContentEditable) return 'keys';
    return null;
  }

  function focusForTyping(ref, clear) {
    const el = lookup(ref);
    const kind = editableKind(el);
    if (kind === null) {
      throw new Error(`element [${ref}] (${shortDescription(el)}) does not take text input`);
    }
    if (el.disabled || el.readOnly) throw new Error(`element [${ref}] is disabled or read-only`);
    if (!inViewport(el)) el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
    el.focus();
    if (kind === 'keys' && clear) {
      if (el.isContentEditable && el.localName !== 'input' && el.localName !== 'textarea') {
        const range = el.ownerDocument.createRange();
        range.selectNodeContents(el);
        const selection = el.ownerDocument.defaultView.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      } else {
        el.select();
      }
    }
    return { kind };
  }

  function fire(el, names) {
    const view = el.ownerDocument.defaultView;
    for (const name of names) el.dispatchEvent(new view.Event(name, { bubbles: true }));
  }

  function setValue(ref, value) {
    const el = lookup(ref);
    if (editableKind(el) !== 'value') throw new Error(`element [${ref}] does not take a set value`);
    el.focus();
    el.value = value;
    if (el.value !== value) {
      throw new Error(`"${value}" is not a valid value for this ${el.type} input`);
    }
    fire(el, ['input', 'change']);
    return true;
  }

  function selectOptions(ref, wanted) {
    const el = lookup(ref);
    if (el.localName !== 'select') {
      throw new Error(`element [${ref}] (${shortDescription(el)}) is not a <select>`);
    }
    if (el.disabled) throw new Error(`element [${ref}] is disabled`);
    if (wanted.length > 1 && !el.multiple) {
      throw new Error(`element [${ref}] allows only one option`);
    }
    const options = Array.from(el.options);
    const chosen = wanted.map((want) => {
      const exact = options.filter((o) => collapse(o.text) === want || o.value === want);
      if (exact.length > 0) return exact[0];
      const lower = want.toLowerCase();
      const loose = options.filter((o) => collapse(o.text).toLowerCase() === lower);
      if (loose.length === 1) return loose[0];
      throw new Error(
        `no option "${want}" in [${ref}]; options: ` + options.map((o) => `"${collapse(o.text)}"`).join(', '),
      );
    });
    el.focus();
    for (const option of options) option.selected = chosen.includes(option);
    fire(el, ['input', 'change']);
    return chosen.map((o) => collapse(o.text));
  }

  function scrollableAncestor(el) {
    for (let node = el; node; node = node.parentElement) {
      const style = styleOf(node);
      if (isScrollable(node, style) || (style.overflowX !== 'visible' && node.scrollWidth > node.clientWidth + 1)) {
        return node;
      }
    }
    return el.ownerDocument.scrollingElement;
  }

  function scroll(ref, direction) {
    if (direction === null) {
      const el = lookup(ref);
      el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
      return 'scrolled into view';
    }
    const target = ref === null ? document.scrollingElement : scrollableAncestor(lookup(ref));
    const vertical = direction === 'up' || direction === 'down';
    const extent = vertical ? target.clientHeight || window.innerHeight : target.clientWidth || window.innerWidth;
    const step = Math.max(20, Math.round(extent * 0.8)) * (direction === 'up' || direction === 'left' ? -1 : 1);
    const before = vertical ? target.scrollTop : target.scrollLeft;
    target.scrollBy({ left: vertical ? 0 : step, top: vertical ? step : 0, behavior: 'instant' });
    const after = vertical ? target.scrollTop : target.scrollLeft;
    if (after === before) return `cannot scroll further ${direction}`;
    return `scrolled ${direction}; now at the ${scrollPosition(target)}`;
  }

  function observe(options) {
    const state = {
      out: [],
      exclude: options.exclude || null,
      // The body is "active" when nothing is focused: not worth a mention.
      active: ((a) => (a === document.body || a === document.documentElement ? null : a))(
        deepActiveElement(),
      ),
      options,
    };
    if (document.body) visit(document.body, { x: 0, y: 0 }, false, state);
    return {
      url: location.href,
      title: document.title,
      width: window.innerWidth,
      height: window.innerHeight,
      elements: state.out,
    };
  }

  // Forgets all refs; new ones start at `start` (the host continues the
  // numbering across documents so a stale ref is unknown, not another element).
  function reset(start) {
    refs = new Map();
    refOf = new WeakMap();
    nextRef = Number.isInteger(start) && start > 0 ? start : 1;
    return true;
  }

  const navigations = () => navigationsStarted;

  const api = { observe, point, focusForTyping, setValue, selectOptions, scroll, reset, navigations };
  const call = (name, args) => {
    try {
      return { ok: api[name](...args) };
    } catch (error) {
      return { error: String(error && error.message ? error.message : error) };
    }
  };
  Object.defineProperty(globalThis, '__hyperagents', { value: Object.freeze({ call }) });
  return true;
})()
