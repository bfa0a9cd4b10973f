import { call } from '../api.js';
import { el, initAppPage, params, setStatus } from '../ui.js';

const NEWEST_COUNT = 12;
const rows = document.getElementById('rows');
const status = document.getElementById('library-status');

function watchUrl(video) {
  return `/pages/watch.html?id=${encodeURIComponent(video.id)}`;
}

function card(video) {
  const thumb = video.thumbnail_url
    ? el('img', { class: 'thumb', src: video.thumbnail_url, alt: '', loading: 'lazy', width: 320, height: 180 })
    : el('span', { class: 'thumb', 'aria-hidden': 'true' });
  const added = new Date(video.created_at).toLocaleDateString();
  return el('li', {}, el('a', { class: 'card', href: watchUrl(video) },
    thumb,
    el('span', { class: 'card-title' }, video.title),
    el('span', { class: 'card-meta' }, `${video.category} · ${added}`)));
}

function row(title, videos, index) {
  const headingId = `row-${index}`;
  return el('section', { class: 'row', 'aria-labelledby': headingId },
    el('h2', { id: headingId }, title),
    el('ul', { class: 'cards' }, ...videos.map(card)));
}

function byCategory(videos) {
  const groups = new Map();
  for (const video of videos) {
    if (!groups.has(video.category)) groups.set(video.category, []);
    groups.get(video.category).push(video);
  }
  return [...groups].sort(([a], [b]) => a.localeCompare(b));
}

async function loadLibrary() {
  let videos;
  try {
    videos = await call('GET', 'video/');
  } catch (error) {
    setStatus(status, error.message, 'error');
    return;
  }
  videos.sort((a, b) => new Date(b.created_at) - new Date(a.created_at));
  rows.replaceChildren();
  if (!videos.length) {
    setStatus(status, 'The library is empty.');
    rows.append(el('p', {}, 'No video is ready yet. ', el('a', { href: '/pages/upload.html' }, 'Upload the first one'), '.'));
    return;
  }
  const groups = byCategory(videos);
  const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  setStatus(status, `${count(videos.length, 'video', 'videos')} in ${count(groups.length, 'category', 'categories')}.`);
  status.classList.add('visually-hidden');
  rows.append(row('Newest', videos.slice(0, NEWEST_COUNT), 0));
  groups.forEach(([category, list], index) => rows.append(row(category, list, index + 1)));
  offerCategories(videos);
}

async function offerCategories(videos) {
  const select = document.getElementById('search-category');
  // The library loads after the page: keep a category chosen meanwhile (or the link's).
  const chosen = select.value || params().get('category') || '';
  const names = [...new Set([...videos.map((video) => video.category), ...(chosen ? [chosen] : [])])].sort();
  select.replaceChildren(el('option', { value: '' }, 'All'), ...names.map((name) => el('option', { value: name }, name)));
  select.value = chosen;
}

/** GET /api/video/?q=...&category=...: the best matches first, shown as one row. */
async function search(q, category) {
  const query = new URLSearchParams({ limit: '100' });
  if (q) query.set('q', q);
  if (category) query.set('category', category);
  let videos;
  try {
    videos = await call('GET', `video/?${query}`);
  } catch (error) {
    setStatus(status, error.message, 'error');
    return;
  }
  status.classList.remove('visually-hidden');
  setStatus(status, videos.length ? `${videos.length} found.` : 'Nothing matches your search.');
  rows.replaceChildren(...(videos.length ? [row(q ? `Results for “${q}”` : category, videos, 'search')] : []));
}

document.getElementById('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const q = event.target.elements.q.value.trim();
  const category = event.target.elements.category.value;
  const query = new URLSearchParams();
  if (q) query.set('q', q);
  if (category) query.set('category', category);
  history.replaceState(null, '', query.size ? `/?${query}` : '/');
  if (q || category) search(q, category);
  else loadLibrary();
});

initAppPage();
// At once, not after the library has loaded: words typed meanwhile are never overwritten.
document.getElementById('search-q').value = params().get('q') ?? '';
loadLibrary().then(() => {
  const q = params().get('q')?.trim();
  const category = params().get('category');
  if (q || category) search(q, category);
});
