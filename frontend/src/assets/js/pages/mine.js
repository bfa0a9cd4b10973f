// "My videos": the caller's own videos in every state (GET /api/video/mine/), from any device; edit,
// retry a failed one, change the thumbnail, delete. Unfinished ones are polled until done.
import { call, uploadForm } from '../api.js';
import { el, initAppPage, setStatus } from '../ui.js';
import { describe, forgetUpload, isFinished, percent, watchUpload } from '../uploads.js';

const PAGE = 20;
const list = document.getElementById('mine-list');
const status = document.getElementById('mine-status');
const more = document.getElementById('more');
let offset = 0;

function field(id, label, input) {
  return el('div', { class: 'field' }, el('label', { for: id }, label), input);
}

function editForm(item, video) {
  const id = `edit-${video.id}`;
  const message = el('p', { class: 'status', 'aria-live': 'polite' });
  const form = el('form', { class: 'edit-form', novalidate: true },
    field(`${id}-title`, 'Title', el('input', { id: `${id}-title`, name: 'title', maxlength: 200, value: video.title })),
    field(`${id}-description`, 'Description',
      el('textarea', { id: `${id}-description`, name: 'description', rows: 3, maxlength: 5000 }, video.description)),
    field(`${id}-category`, 'Category',
      el('input', { id: `${id}-category`, name: 'category', maxlength: 100, value: video.category })),
    el('div', { class: 'actions' },
      el('button', { class: 'button', type: 'submit' }, 'Save'),
      el('button', { class: 'button secondary', type: 'button', onclick: () => form.remove() }, 'Cancel')),
    message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const changes = Object.fromEntries(['title', 'description', 'category'].map(
      (name) => [name, form.elements[name].value]));
    try {
      const saved = await call('PATCH', `video/${video.id}/`, changes);
      form.remove();
      show(item, saved);
    } catch (error) {
      setStatus(message, error.message, 'error');
    }
  });
  return form;
}

function thumbnailPicker(item, video) {
  const id = `thumb-${video.id}`;
  const input = el('input', { id, type: 'file', accept: 'image/jpeg,image/png', class: 'visually-hidden' });
  input.addEventListener('change', async () => {
    if (!input.files.length) return;
    const form = new FormData();
    form.append('file', input.files[0]);
    try {
      show(item, await uploadForm(`video/${video.id}/thumbnail/`, form, () => {}).result);
      setStatus(item.querySelector('.upload-text'), 'Thumbnail changed.', 'success');
    } catch (error) {
      setStatus(item.querySelector('.upload-text'), error.message, 'error');
    }
  });
  return [el('label', { class: 'button secondary', for: id }, 'Change thumbnail'), input];
}

function actions(item, video) {
  const buttons = [];
  if (video.status === 'ready') {
    buttons.push(el('a', { class: 'button', href: `/pages/watch.html?id=${encodeURIComponent(video.id)}` }, 'Watch'));
  }
  if (video.status === 'failed') {
    buttons.push(el('button', { class: 'button', type: 'button', onclick: () => retry(item, video) }, 'Retry'));
  }
  buttons.push(
    el('button', { class: 'button secondary', type: 'button', onclick: () => {
      if (!item.querySelector('.edit-form')) item.append(editForm(item, video));
      item.querySelector('.edit-form input').focus();
    } }, 'Edit'),
    ...thumbnailPicker(item, video),
    el('button', { class: 'button secondary', type: 'button', onclick: () => remove(item, video) }, 'Delete'));
  return buttons;
}

function show(item, video) {
  const thumb = video.thumbnail_url
    ? el('img', { class: 'thumb', src: `${video.thumbnail_url}?v=${Date.now()}`, alt: '', width: 160, height: 90 })
    : null;
  item.querySelector('.thumb-slot').replaceChildren(...[thumb].filter(Boolean));
  item.querySelector('.title').textContent = video.title;
  item.querySelector('.meta').textContent = `${video.category} · ${new Date(video.created_at).toLocaleDateString()}`;
  item.querySelector('progress').value = percent(video);
  item.querySelector('.upload-text').textContent = describe(video);
  item.dataset.status = video.status;
  item.querySelector('.actions').replaceChildren(...actions(item, video));
}

async function retry(item, video) {
  try {
    const queued = await call('POST', `video/${video.id}/retry/`);
    show(item, queued);
    follow(item, queued);
  } catch (error) {
    setStatus(item.querySelector('.upload-text'), error.message, 'error');
  }
}

async function remove(item, video) {
  try {
    await call('DELETE', `video/${video.id}/`);
    forgetUpload(video.id);
    item.remove();
    if (!list.children.length) setStatus(status, 'You have no videos yet.');
  } catch (error) {
    setStatus(item.querySelector('.upload-text'), error.message, 'error');
  }
}

function follow(item, video) {
  if (!isFinished(video)) watchUpload(video.id, (fresh) => show(item, fresh), () => item.remove());
}

function videoItem(video) {
  const item = el('li', { class: 'upload-item', 'data-video-id': video.id },
    el('div', { class: 'thumb-slot' }),
    el('span', { class: 'title' }),
    el('span', { class: 'meta hint' }),
    el('progress', { max: 100, value: 0, 'aria-label': 'Transcoding progress' }),
    el('p', { class: 'upload-text hint', 'aria-live': 'polite' }),
    el('div', { class: 'actions' }));
  show(item, video);
  follow(item, video);
  return item;
}

async function loadPage() {
  let videos;
  try {
    videos = await call('GET', `video/mine/?limit=${PAGE}&offset=${offset}`);
  } catch (error) {
    setStatus(status, error.message, 'error');
    return;
  }
  offset += videos.length;
  list.append(...videos.map(videoItem));
  more.hidden = videos.length < PAGE;
  setStatus(status, list.children.length ? `${list.children.length} videos shown, newest first.`
    : 'You have no videos yet.');
}

more.addEventListener('click', loadPage);
initAppPage();
loadPage();
