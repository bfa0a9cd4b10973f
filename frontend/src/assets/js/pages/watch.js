import { ApiError, call } from '../api.js';
import { el, formatDuration, initAppPage, params, setStatus } from '../ui.js';
import {
  comingRungs, describe, forgetUpload, growingRungs, isFinished, isOwnUpload, percent, watchUpload,
} from '../uploads.js';
import { bindShortcuts, rememberPosition, startPlayback, worthResuming } from '../player.js';

const id = params().get('id') ?? '';
const video = document.getElementById('video');
const container = document.getElementById('player');
const quality = document.getElementById('quality');
const levelStatus = document.getElementById('level-status');
const playerStatus = document.getElementById('player-status');
const startOver = document.getElementById('start-over');
let hls = null;

function showLevels(levels) {
  quality.replaceChildren(el('option', { value: '-1' }, 'Auto'),
    ...levels.map((level) => el('option', { value: String(level.index) }, level.label)));
  quality.disabled = levels.length < 2;
}

function showLevelSwitched(level, auto) {
  if (level?.height) setStatus(levelStatus, `Playing ${level.height}p${auto ? ' (auto)' : ''}`);
}

function chooseQuality() {
  // currentLevel switches now (flushing the buffer); -1 gives the choice back to hls.js.
  hls.currentLevel = Number(quality.value);
  if (quality.value === '-1') setStatus(levelStatus, 'Quality: automatic');
}

function resume() {
  const saved = rememberPosition(video, id);
  video.addEventListener('loadedmetadata', () => {
    if (!worthResuming(saved, video.duration)) return;
    video.currentTime = saved;
    setStatus(playerStatus, `Resumed at ${formatDuration(saved)}.`);
    startOver.hidden = false;
  }, { once: true });
  startOver.addEventListener('click', () => {
    video.currentTime = 0;
    startOver.hidden = true;
    video.play().catch(() => {});
  });
}

/** What is still being encoded, for a video that plays already. */
function preparing(details) {
  const growing = growingRungs(details);
  const coming = comingRungs(details);
  const parts = [];
  if (growing.length) parts.push(`${growing.join(', ')} plays while it is still being encoded`);
  if (coming.length) parts.push(`${coming.join(', ')} ${coming.length > 1 ? 'are' : 'is'} still being prepared (reload later to get ${coming.length > 1 ? 'them' : 'it'})`);
  return parts.length ? `${parts.join('; ')}.` : 'More qualities are still being prepared; reload later to get them.';
}

function play(details) {
  hls = startPlayback(video, `/api/video/${encodeURIComponent(id)}/master.m3u8`, {
    onLevels: showLevels,
    onLevelSwitched: showLevelSwitched,
    onError: (message) => setStatus(playerStatus, message, 'error'),
  });
  // A debugging handle (also read by the browser tests): the hls.js instance of this page.
  window.videoflixPlayer = hls;
  quality.addEventListener('change', chooseQuality);
  resume();
  bindShortcuts(video, container);
  if (!isFinished(details)) setStatus(playerStatus, preparing(details));
}

function showDetails(details) {
  document.title = `${details.title} · Videoflix`;
  document.getElementById('video-title').textContent = details.title;
  document.getElementById('video-description').textContent = details.description ?? '';
  const added = new Date(details.created_at).toLocaleDateString();
  const length = details.duration ? ` · ${formatDuration(details.duration)}` : '';
  document.getElementById('video-meta').textContent = `${details.category} · added ${added}${length}`;
}

function offerDelete(details) {
  if (!isOwnUpload(id)) return;
  document.getElementById('owner-actions').hidden = false;
  document.getElementById('delete-video').addEventListener('click', async () => {
    if (!confirm(`Delete “${details.title}” for good?`)) return;
    try {
      await call('DELETE', `video/${encodeURIComponent(id)}/`);
      forgetUpload(id);
      location.assign('/');
    } catch (error) {
      setStatus(playerStatus, error.message, 'error');
    }
  });
}

/** Not playable yet: show transcoding progress, start playing once the first rung is ready. */
function waitUntilReady() {
  const section = document.getElementById('transcoding');
  section.hidden = false;
  container.hidden = true;
  const stop = watchUpload(id, (details) => {
    document.getElementById('transcode-progress').value = percent(details);
    document.getElementById('transcode-percent').textContent = describe(details);
    if (details.status === 'ready') {
      stop();
      section.hidden = true;
      container.hidden = false;
      play(details);
    }
  });
}

async function load() {
  let details;
  try {
    details = await call('GET', `video/${encodeURIComponent(id)}/`);
  } catch (error) {
    const message = error instanceof ApiError && error.status === 404 ? 'This video does not exist (any more).' : error.message;
    document.getElementById('video-title').textContent = 'Video not available';
    container.hidden = true;
    setStatus(playerStatus, message, 'error');
    return;
  }
  showDetails(details);
  offerDelete(details);
  if (details.status === 'ready') play(details);
  else if (details.status === 'failed') {
    container.hidden = true;
    setStatus(playerStatus, describe(details), 'error');
  } else waitUntilReady();
}

initAppPage();
load();
