// Names for ids: institutions (everyone may list them) and specialists (everyone may
// look them up), cached for the page's lifetime. Other users are shown by their id:
// only admins may read other users' records, and the console does not ask in vain.

import { unary } from './grpcweb.js';
import { getLanguage } from './i18n.js';
import { h } from './ui.js';

const DIRECTORY = 'teleconsult.v1.DirectoryService';

let institutions = null; // Promise<Map<id, Institution>>
const specialists = new Map(); // id -> Promise<Specialist|null>

/** Forgets everything (on sign-out: another user may see other things). */
export function resetDirectory() {
  institutions = null;
  specialists.clear();
}

/** All institutions by id. */
export function loadInstitutions() {
  if (!institutions) {
    institutions = unary(DIRECTORY, 'ListInstitutions', {})
      .then((r) => new Map(r.institutions.map((i) => [i.id, i])))
      .catch((error) => {
        institutions = null;
        throw error;
      });
  }
  return institutions;
}

/** An institution's name in the current language. */
export function institutionName(institution) {
  if (!institution) return '';
  const zh = institution.name_zh || institution.name_en || institution.id;
  const en = institution.name_en || institution.name_zh || institution.id;
  return getLanguage() === 'en' ? en : zh;
}

/** A person's display name in the current language (User or Specialist). */
export function personName(person) {
  if (!person) return '';
  const zh = person.display_name_zh || person.display_name_en;
  const en = person.display_name_en || person.display_name_zh;
  return (getLanguage() === 'en' ? en : zh) || person.user_id || person.id || '';
}

/** A specialist profile, or null when there is none (or it may not be read). */
export function loadSpecialist(userId) {
  if (!userId) return Promise.resolve(null);
  if (!specialists.has(userId)) {
    specialists.set(
      userId,
      unary(DIRECTORY, 'GetSpecialist', { user_id: userId }).catch(() => null),
    );
  }
  return specialists.get(userId);
}

/** Remembers profiles found by a search, so that their names need no further call. */
export function rememberSpecialists(list) {
  for (const s of list) specialists.set(s.user_id, Promise.resolve(s));
}

/** An element showing an institution id, replaced by its name once known. */
export function institutionLabel(id, testid) {
  const el = h('span', { class: 'name', testid, 'data-id': id || '' }, id || '—');
  if (id) {
    loadInstitutions()
      .then((map) => {
        const inst = map.get(id);
        if (inst) {
          el.textContent = institutionName(inst);
          el.title = id;
        }
      })
      .catch(() => {});
  }
  return el;
}

/** An element showing a doctor's id, replaced by "name (id)" once the profile is known. */
export function doctorLabel(id, testid) {
  const el = h('span', { class: 'name', testid, 'data-id': id || '' }, id || '—');
  if (id) {
    loadSpecialist(id).then((s) => {
      if (s) {
        const name = personName(s);
        el.textContent = name && name !== id ? `${name} (${id})` : id;
      }
    });
  }
  return el;
}
