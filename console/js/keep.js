// What the user typed survives a page being drawn again (a language switch): the
// edited form fields are read before, and put back into the fields of the same
// data-testid as the new page builds them (pages build some only once their data has
// loaded). Passwords are never kept.

const CONTROLS = 'input[data-testid], textarea[data-testid], select[data-testid]';
const NOT_KEPT = new Set(['password', 'hidden', 'file', 'submit', 'button', 'reset']);

// How long the new page may take to build the fields.
const RESTORE_FOR_MS = 10_000;

function edited(control) {
  if (control.tagName === 'SELECT') {
    return [...control.options].some((option) => option.selected !== option.defaultSelected);
  }
  if (control.type === 'checkbox' || control.type === 'radio') {
    return control.checked !== control.defaultChecked;
  }
  return control.value !== control.defaultValue;
}

function pristine(control) {
  return !edited(control) && !control.dataset.kept;
}

/** The edited fields under `root`: [{ key, value, checked }], in document order. */
export function keepInput(root) {
  const kept = [];
  for (const control of root.querySelectorAll(CONTROLS)) {
    if (NOT_KEPT.has(control.type) || control.disabled || !edited(control)) continue;
    kept.push({
      key: control.dataset.testid,
      value: control.value,
      checked: control.checked,
    });
  }
  return kept;
}

function put(control, { value, checked }) {
  if (control.type === 'checkbox' || control.type === 'radio') {
    if (control.value !== value) return false;
    control.checked = checked;
  } else if (control.tagName === 'SELECT') {
    // Its options may not have arrived yet.
    if (![...control.options].some((option) => option.value === value)) return false;
    control.value = value;
  } else {
    control.value = value;
  }
  control.dataset.kept = 'true';
  // The page's own listeners see it as typed.
  control.dispatchEvent(new Event('input', { bubbles: true }));
  control.dispatchEvent(new Event('change', { bubbles: true }));
  return true;
}

/**
 * Puts `kept` back into the fields under `root`, now and as the page adds them, for
 * at most RESTORE_FOR_MS; a field the user has touched meanwhile is left alone.
 * Returns a function that stops waiting.
 */
export function restoreInput(root, kept) {
  let pending = kept.slice();
  const attempt = () => {
    pending = pending.filter((entry) => {
      const candidates = root.querySelectorAll(`[data-testid="${CSS.escape(entry.key)}"]`);
      for (const control of candidates) {
        if (pristine(control) && put(control, entry)) return false;
      }
      return true;
    });
    if (pending.length === 0) stop();
  };
  const observer = new MutationObserver(attempt);
  const timer = setTimeout(() => stop(), RESTORE_FOR_MS);
  function stop() {
    observer.disconnect();
    clearTimeout(timer);
  }
  observer.observe(root, { childList: true, subtree: true });
  attempt();
  return stop;
}
