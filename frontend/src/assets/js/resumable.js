// Uploads a video with tus-js-client (vendored as a classic script: window.tus) to /api/uploads/, so a
// dropped connection is retried from where the server stopped, and a reload resumes when the same
// file is chosen again (tus-js-client keeps the upload URL in localStorage under the file's fingerprint).
import { ApiError, call, csrfToken, refreshSession } from './api.js';

const ENDPOINT = '/api/uploads/';
// Backoff after a failed request, in ms; a network outage of about five minutes is ridden out.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000, 60000, 60000, 60000];

function apiError(error) {
  const response = error.originalResponse;
  if (!response) return new ApiError(0, {});
  let body = {};
  try {
    body = JSON.parse(response.getBody() || '{}');
  } catch { /* not JSON: the status says enough */ }
  return new ApiError(response.getStatus(), body);
}

/**
 * Starts uploading `file` with the form `fields` (title, description, category).
 * onProgress(sent, total); onResume(offset) when an earlier upload of this file is continued.
 * Returns {abort, result}: abort() cancels and deletes the partial upload; result resolves to the video.
 */
export function resumableUpload(file, fields, { onProgress, onResume }) {
  let upload;
  let videoId = null;
  let cancelled = false;
  const result = new Promise((resolve, reject) => {
    upload = new window.tus.Upload(file, {
      endpoint: ENDPOINT,
      metadata: { filename: file.name, ...fields },
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      onBeforeRequest(request) {
        request.setHeader('X-CSRFToken', csrfToken());
      },
      onShouldRetry(error, attempt, options) {
        const status = error.originalResponse?.getStatus() ?? 0;
        if (status === 401) {
          refreshSession(); // the retry after the next delay carries the fresh cookie
          return attempt < 2;
        }
        return status === 0 || status >= 500 || status === 409 || status === 423;
      },
      onAfterResponse(_request, response) {
        videoId = response.getHeader('X-Video-Id') ?? videoId;
      },
      onProgress,
      onSuccess() {
        call('GET', `video/${encodeURIComponent(videoId)}/`).then(resolve, reject);
      },
      onError(error) {
        reject(cancelled ? new ApiError(0, { detail: 'Upload cancelled.' }) : apiError(error));
      },
    });
    upload.findPreviousUploads().then((previous) => {
      if (previous.length && !cancelled) {
        upload.resumeFromPreviousUpload(previous[0]);
        onResume?.();
      }
      if (!cancelled) upload.start();
    });
  });
  return {
    abort() {
      cancelled = true;
      upload.abort(true).catch(() => {});
      return result.catch(() => {});
    },
    result,
  };
}
