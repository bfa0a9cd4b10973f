// Uploads a file with tus-js-client (the web app's client) in two sessions: the first stops after its
// first chunk, the second resumes from the upload URL the first created. Prints one JSON line.
// usage: NODE_PATH=frontend/node_modules node tus_upload.cjs ENDPOINT FILE COOKIE CSRF CHUNK_BYTES
const fs = require("fs");
const path = require("path");
const tus = require("tus-js-client");

const [endpoint, file, cookie, csrf, chunkBytes] = process.argv.slice(2);
const headers = { Cookie: cookie, "X-CSRFToken": csrf };
const size = fs.statSync(file).size;
const metadata = { filename: path.basename(file), title: "Resumed with tus-js-client",
                   description: "Uploaded in two sessions", category: "Testing" };

function session(options) {
  return new Promise((resolve, reject) => {
    const result = { offsets: [] };
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint, headers, metadata, uploadSize: size, chunkSize: Number(chunkBytes), retryDelays: [],
      ...options,
      onChunkComplete(_chunk, accepted) {
        result.offsets.push(accepted);
        if (options.stopAfterFirstChunk) {
          upload.abort().then(() => resolve({ ...result, url: upload.url }));
        }
      },
      onAfterResponse(_request, response) {
        const videoId = response.getHeader("X-Video-Id");
        if (videoId) result.videoId = Number(videoId);
      },
      onSuccess() { resolve({ ...result, url: upload.url }); },
      onError: reject,
    });
    upload.start();
  });
}

(async () => {
  const first = await session({ stopAfterFirstChunk: true });
  const second = await session({ uploadUrl: first.url });
  console.log(JSON.stringify({ first, second }));
})().catch((error) => { console.error(String(error)); process.exit(1); });
