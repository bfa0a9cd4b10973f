import { call } from '../api.js';
import { resumableUpload } from '../resumable.js';
import { el, initAppPage, setStatus } from '../ui.js';
import { describe, percent, rememberUpload, watchUpload } from '../uploads.js';

const form = document.getElementById('upload-form');
const fileInput = document.getElementById('file');
const dropzone = document.getElementById('dropzone');
const formStatus = form.querySelector('.status');
const progress = document.getElementById('progress');
const progressStatus = document.getElementById('progress-status');
const cancelButton = document.getElementById('cancel-upload');

function formatSize(bytes) {
  const units = ['bytes', 'KB', 'MB', 'GB'];
  let size = bytes;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function showChosenFile() {
  const file = fileInput.files[0];
  document.getElementById('file-name').textContent = file ? `Selected: ${file.name} (${formatSize(file.size)})` : '';
  const title = document.getElementById('title');
  if (file && !title.value) title.value = file.name.replace(/\.[^.]+$/, '').replace(/[_-]+/g, ' ');
}

function bindDropzone() {
  for (const type of ['dragenter', 'dragover']) {
    dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add('dragging');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    dropzone.addEventListener(type, () => dropzone.classList.remove('dragging'));
  }
  dropzone.addEventListener('drop', (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) {
      fileInput.files = event.dataTransfer.files;
      showChosenFile();
    }
  });
  fileInput.addEventListener('change', showChosenFile);
}

async function offerKnownCategories() {
  const defaults = ['Documentary', 'Drama', 'Romance', 'Comedy', 'Action'];
  const videos = await call('GET', 'video/').catch(() => []);
  const names = new Set([...videos.map((video) => video.category), ...defaults]);
  document.getElementById('categories').replaceChildren(
    ...[...names].sort().map((name) => el('option', { value: name })));
}

function missingFields() {
  const missing = [];
  if (!fileInput.files.length) missing.push('a video file');
  if (!form.elements.title.value.trim()) missing.push('a title');
  if (!form.elements.description.value.trim()) missing.push('a description');
  if (!form.elements.category.value.trim()) missing.push('a category');
  return missing;
}

let lastAnnounced = -1;

// Set once tus-js-client picks up an earlier upload of the same file: the status keeps saying so.
let resumed = false;

function showUploadProgress(loaded, total) {
  const value = Math.floor((loaded / total) * 100);
  document.getElementById('upload-progress').value = value;
  document.getElementById('upload-percent').textContent = `${value} %`;
  // Announce in steps of 25 %, not on every progress event.
  if (Math.floor(value / 25) !== lastAnnounced) {
    lastAnnounced = Math.floor(value / 25);
    const doing = resumed ? 'Continuing your earlier upload of this file' : 'Uploading';
    setStatus(progressStatus, `${doing}: ${value} %`);
  }
}

function showTranscoding(video) {
  document.getElementById('transcode-progress').value = percent(video);
  document.getElementById('transcode-percent').textContent = `${percent(video)} %`;
  setStatus(progressStatus, describe(video), video.status === 'failed' ? 'error' : '');
  if (video.status === 'ready') {
    const watch = document.getElementById('watch-link');
    watch.href = `/pages/watch.html?id=${encodeURIComponent(video.id)}`;
    watch.hidden = false;
  }
  document.getElementById('progress-title').textContent =
    video.status === 'ready' || video.status === 'failed' ? video.title : `Preparing ${video.title}`;
}

function finishUpload(video) {
  rememberUpload(video.id);
  cancelButton.hidden = true;
  document.getElementById('another-link').hidden = false;
  document.getElementById('upload-progress').value = 100;
  document.getElementById('upload-percent').textContent = '100 %';
  showTranscoding(video);
  watchUpload(video.id, showTranscoding);
}

async function startUpload() {
  const file = fileInput.files[0];
  const fields = Object.fromEntries(['title', 'description', 'category'].map(
    (name) => [name, form.elements[name].value.trim()]));
  form.hidden = true;
  progress.hidden = false;
  document.getElementById('progress-name').textContent = file.name;
  document.getElementById('progress-title').focus();
  const upload = resumableUpload(file, fields, {
    onProgress: showUploadProgress,
    onResume: () => {
      resumed = true;
      setStatus(progressStatus, 'Continuing your earlier upload of this file.');
    },
  });
  cancelButton.onclick = () => upload.abort();
  try {
    finishUpload(await upload.result);
  } catch (error) {
    form.hidden = false;
    progress.hidden = true;
    setStatus(formStatus, error.message, 'error');
    form.querySelector('[type="submit"]').focus();
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const missing = missingFields();
  if (missing.length) {
    setStatus(formStatus, `Please add ${missing.join(', ')}.`, 'error');
    return;
  }
  startUpload();
});

initAppPage();
bindDropzone();
offerKnownCategories();
