// A video's transcoding state in words, and polling its detail until transcoding is done. The ids of
// this browser's own uploads are kept in localStorage only to offer "Delete" on the watch page; the
// list of one's videos comes from GET /api/video/mine/ (the My videos page), on every device.
import { ApiError, call } from './api.js';

const OWN_KEY = 'videoflix.myVideos';
const POLL_MS = 2000;

const STATUS_TEXT = {
  uploaded: 'Uploaded, waiting for a transcoder',
  queued: 'Queued for transcoding',
  processing: 'Transcoding',
  ready: 'Ready to watch',
  failed: 'Transcoding failed',
};

function readIds() {
  try {
    const ids = JSON.parse(localStorage.getItem(OWN_KEY) || '[]');
    return Array.isArray(ids) ? ids.map(String) : [];
  } catch {
    return [];
  }
}

function writeIds(ids) {
  localStorage.setItem(OWN_KEY, JSON.stringify([...new Set(ids)]));
}

export function rememberUpload(id) {
  writeIds([...readIds(), String(id)]);
}

export function forgetUpload(id) {
  writeIds(readIds().filter((known) => known !== String(id)));
}

export function isOwnUpload(id) {
  return readIds().includes(String(id));
}

/** Rung names of the renditions that can be played now. */
export function renditionNames(video) {
  return (video.renditions ?? []).map((rendition) => rendition.rung);
}

export function percent(video) {
  return Math.max(0, Math.min(100, Math.round(Number(video.progress) || 0)));
}

/** Rungs the transcoder is still working on (growing ones included). */
export function pendingRungs(video) {
  return video.renditions_pending ?? [];
}

/** Rungs that play already while they are still being encoded (their playlists gain segments). */
export function growingRungs(video) {
  return (video.renditions_growing ?? []).map((rendition) => rendition.rung);
}

/** Rungs not playable yet: pending, not growing. */
export function comingRungs(video) {
  const growing = growingRungs(video);
  return pendingRungs(video).filter((rung) => !growing.includes(rung));
}

/** Done means nothing more will change: every rung published, or failed for good. */
export function isFinished(video) {
  return video.status === 'failed' || (video.status === 'ready' && pendingRungs(video).length === 0);
}

/** "Transcoding: 42 %" and, once playable, which renditions exist and which are coming. */
export function describe(video) {
  const status = STATUS_TEXT[video.status] ?? video.status;
  if (video.status === 'failed') return `${status}: ${video.failure_reason || 'unknown reason'}`;
  const rungs = renditionNames(video);
  const available = rungs.length ? ` Available: ${rungs.join(', ')}.` : '';
  const [growing, coming] = [growingRungs(video), comingRungs(video)];
  const growingText = growing.length ? ` Playing while it encodes: ${growing.join(', ')}.` : '';
  const comingText = coming.length ? ` Coming: ${coming.join(', ')}.` : '';
  const rungsText = `${available}${growingText}${comingText}`;
  if (video.status === 'ready') return `${status} (${percent(video)} % of all qualities done).${rungsText}`;
  if (video.status === 'processing') return `${status}: ${percent(video)} %.${rungsText}`;
  return `${status}.`;
}

/**
 * Calls onUpdate(video) with the detail of video `id` every two seconds until it is finished;
 * onGone() when it no longer exists for us (deleted, or another user's). Returns a stop function.
 */
export function watchUpload(id, onUpdate, onGone = () => {}) {
  let timer = null;
  let stopped = false;
  const poll = async () => {
    try {
      const video = await call('GET', `video/${encodeURIComponent(id)}/`);
      if (stopped) return;
      onUpdate(video);
      if (isFinished(video)) return;
    } catch (error) {
      if (error instanceof ApiError && [403, 404].includes(error.status)) {
        onGone();
        return;
      }
      if (error.status === 401) return; // on the way to the login page
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  };
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
