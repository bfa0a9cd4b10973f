// Adaptive HLS playback with hls.js: automatic quality or a fixed rung, resume position, shortcuts.
import Hls from './vendor/hls.js';
import { goToLogin, refreshSession } from './api.js';

const RESUME_PREFIX = 'videoflix.position.';
const SAVE_EVERY_MS = 3000;
const SEEK_STEP = 5;

/** Playable levels as [{index, height, label}], highest first, one per height. */
export function qualityLevels(hls) {
  const byHeight = new Map();
  hls.levels.forEach((level, index) => {
    if (level.height && !byHeight.has(level.height)) {
      byHeight.set(level.height, { index, height: level.height, label: `${level.height}p` });
    }
  });
  return [...byHeight.values()].sort((a, b) => b.height - a.height);
}

/**
 * Plays `url` in `video`. Callbacks: onLevels(levels) once the master playlist is read,
 * onLevelSwitched(level, auto) whenever the playing rung changes, onError(message) when playback fails.
 * Returns the Hls instance (null with native HLS playback).
 */
export function startPlayback(video, url, { onLevels, onLevelSwitched, onError }) {
  if (!Hls.isSupported()) {
    if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = url; // Safari plays HLS itself and chooses the quality itself
      return null;
    }
    onError('This browser cannot play HLS video (it lacks Media Source Extensions).');
    return null;
  }
  const hls = new Hls({ capLevelToPlayerSize: false, startLevel: -1 });
  let recoveredMedia = false;
  hls.on(Hls.Events.MANIFEST_PARSED, () => onLevels(qualityLevels(hls)));
  hls.on(Hls.Events.LEVEL_SWITCHED, (event, data) => onLevelSwitched(hls.levels[data.level], hls.autoLevelEnabled));
  hls.on(Hls.Events.ERROR, async (event, data) => {
    if (data.response?.code === 401) {
      // The access token expired mid-film: refresh once and carry on, else log in and come back.
      if (await refreshSession()) hls.startLoad(video.currentTime);
      else goToLogin();
      return;
    }
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !recoveredMedia) {
      recoveredMedia = true;
      hls.recoverMediaError();
      return;
    }
    onError(data.type === Hls.ErrorTypes.NETWORK_ERROR
      ? 'The video could not be loaded. Check your connection and reload the page.'
      : `Playback failed (${data.details}).`);
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  return hls;
}

/** Saves the position while playing; returns the saved one worth resuming from (or 0). */
export function rememberPosition(video, videoId) {
  const key = RESUME_PREFIX + videoId;
  let lastSave = 0;
  const save = () => {
    lastSave = Date.now();
    if (video.ended) localStorage.removeItem(key);
    else if (video.currentTime > 0) localStorage.setItem(key, video.currentTime.toFixed(1));
  };
  video.addEventListener('timeupdate', () => {
    if (Date.now() - lastSave >= SAVE_EVERY_MS) save();
  });
  for (const type of ['pause', 'seeked', 'ended']) video.addEventListener(type, save);
  window.addEventListener('pagehide', save);
  return Number(localStorage.getItem(key)) || 0;
}

/** Is `position` a place to resume from: not the very start, not the last second. */
export function worthResuming(position, duration) {
  return position >= 1 && (!duration || position < duration - 1);
}

function isFormControl(target) {
  return target instanceof HTMLElement && target.matches('input, select, textarea, button, a[href], [contenteditable]');
}

function toggleFullscreen(container) {
  if (document.fullscreenElement) document.exitFullscreen();
  else container.requestFullscreen?.();
}

/** Space play/pause, arrows seek and volume, F full screen, M mute; not while typing in a control. */
export function bindShortcuts(video, container) {
  const actions = {
    ' ': () => (video.paused ? video.play().catch(() => {}) : video.pause()),
    ArrowLeft: () => { video.currentTime = Math.max(0, video.currentTime - SEEK_STEP); },
    ArrowRight: () => { video.currentTime = Math.min(video.duration || Infinity, video.currentTime + SEEK_STEP); },
    ArrowUp: () => { video.volume = Math.min(1, video.volume + 0.1); },
    ArrowDown: () => { video.volume = Math.max(0, video.volume - 0.1); },
    f: () => toggleFullscreen(container),
    m: () => { video.muted = !video.muted; },
  };
  const actionFor = (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || isFormControl(event.target)) return null;
    return actions[event.key.length === 1 ? event.key.toLowerCase() : event.key] ?? null;
  };
  // Capture phase on window, all three key events: a focused <video>'s native controls never see our
  // keys, so nothing happens twice.
  for (const type of ['keydown', 'keypress', 'keyup']) {
    window.addEventListener(type, (event) => {
      const action = actionFor(event);
      if (!action) return;
      event.preventDefault();
      event.stopPropagation();
      if (type === 'keydown') action();
    }, { capture: true });
  }
}
