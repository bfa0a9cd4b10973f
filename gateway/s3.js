/*
 * The gateway's reads of the private media bucket (MEDIA_STORAGE=s3; njs 0.7.9 and later).
 *
 * nginx fetches playlists, segments and thumbnails from S3_ENDPOINT_URL (proxied), after its
 * own token and visibility checks. Each GET is signed with AWS Signature Version 4 (docs:
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html) using the gateway's
 * READ-ONLY key, GATEWAY_S3_ACCESS_KEY_ID / GATEWAY_S3_SECRET_ACCESS_KEY, which nginx passes to its
 * workers from its environment (`env` in nginx.conf): the secret is in no file the gateway renders.
 * The values are `js_set` variables used only by proxy_set_header, so nginx evaluates them only when it
 * goes to S3: a cache hit costs no signing.
 */

import crypto from 'crypto';

const ALGORITHM = 'AWS4-HMAC-SHA256';
// SHA-256 of the empty body of a GET.
const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SIGNED_HEADERS = 'host;x-amz-content-sha256;x-amz-date';

/* The request time, YYYYMMDDTHHMMSSZ, from nginx's cached clock: the same value for every header of
 * one upstream request (both js_set variables below read it). */
function amzDate(r) {
    const seconds = Math.floor(Number(r.variables.msec));
    return new Date(seconds * 1000).toISOString().replace(/[-:]/g, '').replace(/\.[0-9]+/, '');
}

/* The object's path, /<bucket>/<key>, as sent (path-style): the key's characters are the gateway's own
 * location patterns' (letters, digits, `_`, `.`, `/`), which SigV4 leaves unencoded; encode the rest. */
function objectPath(r) {
    return '/' + r.variables.s3_bucket + r.variables.uri;
}

function canonicalPath(path) {
    return path.split('/').map(part => encodeURIComponent(part)
        .replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase())).join('/');
}

function hmac(key, data) {
    return crypto.createHmac('sha256', key).update(data).digest();
}

function sha256Hex(data) {
    return crypto.createHash('sha256').update(data).digest('hex');
}

/* js_set $s3_date: the X-Amz-Date header. */
function date(r) {
    return amzDate(r);
}

/* js_set $s3_authorization: the Authorization header of the GET of objectPath(r). */
function authorization(r) {
    const keyId = process.env.GATEWAY_S3_ACCESS_KEY_ID || '';
    const secret = process.env.GATEWAY_S3_SECRET_ACCESS_KEY || '';
    if (!keyId || !secret) {
        // S3 then refuses the request and the viewer gets a JSON 502, never a pass.
        r.error('GATEWAY_S3_ACCESS_KEY_ID and GATEWAY_S3_SECRET_ACCESS_KEY must be in the gateway\'s environment');
        return '';
    }
    const when = amzDate(r);
    const day = when.slice(0, 8);
    const region = r.variables.s3_region;
    const scope = `${day}/${region}/s3/aws4_request`;
    const canonicalRequest = [
        'GET',
        canonicalPath(objectPath(r)),
        r.variables.s3_query,  // one parameter, already encoded
        `host:${r.variables.s3_host}`,
        `x-amz-content-sha256:${EMPTY_BODY_SHA256}`,
        `x-amz-date:${when}`,
        '',
        SIGNED_HEADERS,
        EMPTY_BODY_SHA256,
    ].join('\n');
    const stringToSign = [ALGORITHM, when, scope, sha256Hex(canonicalRequest)].join('\n');
    const signingKey = hmac(hmac(hmac(hmac('AWS4' + secret, day), region), 's3'), 'aws4_request');
    const signature = crypto.createHmac('sha256', signingKey).update(stringToSign).digest('hex');
    return `${ALGORITHM} Credential=${keyId}/${scope}, SignedHeaders=${SIGNED_HEADERS}, Signature=${signature}`;
}

/* What a media answer keeps of S3's headers: the body's own (length, range, validators). Everything
 * else (x-amz-*, the server's name and its own extras, S3's Cache-Control and Vary) is dropped; the
 * gateway adds its Cache-Control, CORS and security headers after this filter. */
const KEPT = {
    'content-type': true, 'content-length': true, 'content-range': true, 'accept-ranges': true, 'etag': true,
    'last-modified': true,
};

/* js_header_filter of the media locations: S3's own headers gone. (The Content-Type is the one the
 * gateway asked for: response-content-type, $s3_query in nginx.conf.) */
function mediaHeaders(r) {
    for (const name in r.headersOut) {
        if (!KEPT[name.toLowerCase()]) {
            delete r.headersOut[name];
        }
    }
}

export default { date, authorization, mediaHeaders };
