import { call } from '../api.js';
import { el, initAppPage, setStatus } from '../ui.js';
import { describe, forgetUpload, isFinished, pendingUploads, percent, watchUpload } from '../uploads.js';

const NEWEST_COUNT = 12;
const rows = document.getElementById('rows');
const status = document.getElementById('library-status');
const uploadsSection = document.getElementById('my-uploads');
const uploadsList = document.getElementById('my-uploads-list');

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
}

function removeItem(item, id) {
  forgetUpload(id);
  item.remove();
  uploadsSection.hidden = uploadsList.children.length === 0;
}

async function deleteVideo(item, id) {
  try {
    await call('DELETE', `video/${encodeURIComponent(id)}/`);
    forgetUpload(id, { deleted: true });
    removeItem(item, id);
  } catch (error) {
    item.querySelector('.upload-text').textContent = error.message;
  }
}

function uploadItem(id) {
  return el('li', { class: 'upload-item', 'data-video-id': id },
    el('span', { class: 'title' }, 'Checking…'),
    el('progress', { max: 100, value: 0, 'aria-label': 'Transcoding progress' }),
    el('p', { class: 'upload-text hint', 'aria-live': 'polite' }),
    el('div', { class: 'actions' }));
}

function showUpload(item, id, video, wasReady) {
  item.querySelector('.title').textContent = video.title;
  item.querySelector('progress').value = percent(video);
  item.querySelector('.upload-text').textContent = describe(video);
  const actions = item.querySelector('.actions');
  if (video.status === 'ready' && !actions.querySelector('a')) {
    actions.append(el('a', { class: 'button', href: watchUrl(video) }, 'Watch now'));
  }
  if (video.status === 'failed' && !actions.querySelector('button')) {
    actions.append(
      el('button', { class: 'button secondary', type: 'button', onclick: () => deleteVideo(item, id) }, 'Delete it'),
      el('button', { class: 'button secondary', type: 'button', onclick: () => removeItem(item, id) }, 'Dismiss'));
  }
  if (video.status === 'ready' && wasReady === false) loadLibrary();
  if (video.status === 'ready' && isFinished(video)) forgetUpload(id);
}

function trackOwnUploads() {
  for (const id of pendingUploads()) {
    const item = uploadItem(id);
    uploadsList.append(item);
    uploadsSection.hidden = false;
    let wasReady = null; // unknown until the first answer: a video ready from the start needs no reload
    watchUpload(id, (video) => {
      showUpload(item, id, video, wasReady);
      wasReady = video.status === 'ready';
    }, () => removeItem(item, id));
  }
}

initAppPage();
trackOwnUploads();
loadLibrary();
