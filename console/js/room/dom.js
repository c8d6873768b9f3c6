// The room's small DOM kit: an element builder, styles set from script, and the room's
// words. The words are in the console's dictionaries (console/js/i18n.js, the `room.`
// block); the translator is the console's, set when the room starts.

let t = (key) => key;

/** Translates with the console's `t` from now on. */
export function useTranslator(translate) {
  t = translate;
}

export function tr(key, params) {
  return t(key, params);
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name === 'className') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// Styles set from script (the CSP forbids style attributes in markup, not the CSSOM).
export function css(node, styles) {
  Object.assign(node.style, styles);
  return node;
}
