/*
 * Access-token check for the video routes (njs 0.7.9 and later, WebCrypto).
 *
 * The `access_token` cookie must be a JWT signed RS256 with auth's key (KEYS_DIR/jwt_public.pem), of
 * type "access", with a user id in `sub`, not expired. nginx asks through `auth_request /_jwt`, which
 * caches each verified token until its `exp`: njs 0.7.9 keeps nothing between requests and importing
 * the RSA key costs ~130 us, nearly all of a check, so the cache is what keeps segments fast.
 */

import fs from 'fs';

const RS256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
const CLOCK_SKEW_SECONDS = 30;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const SUBJECT = /^[A-Za-z0-9_-]{1,64}$/;

function decodeJson(part) {
    try {
        const value = JSON.parse(Buffer.from(part, 'base64url').toString());
        return typeof value === 'object' && value !== null ? value : null;
    } catch (e) {
        return null;
    }
}

function isTime(value) {
    return typeof value === 'number' && isFinite(value);
}

function claimsValid(claims, now) {
    return claims.type === 'access'
        && typeof claims.sub === 'string' && SUBJECT.test(claims.sub)
        && isTime(claims.exp) && claims.exp > now
        && (claims.nbf === undefined || (isTime(claims.nbf) && claims.nbf <= now + CLOCK_SKEW_SECONDS))
        && (claims.iat === undefined || (isTime(claims.iat) && claims.iat <= now + CLOCK_SKEW_SECONDS));
}

function publicKeyDer(path) {
    const pem = fs.readFileSync(path, 'utf8');
    return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
}

/* The user id of a valid access token, or '' (cheap checks first, the signature last). */
async function verifiedSubject(token, publicKeyPath) {
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every(part => BASE64URL.test(part))) {
        return '';
    }
    const header = decodeJson(parts[0]);
    const claims = decodeJson(parts[1]);
    if (!header || header.alg !== 'RS256' || header.crit !== undefined
        || !claims || !claimsValid(claims, Date.now() / 1000)) {
        return '';
    }
    const key = await crypto.subtle.importKey('spki', publicKeyDer(publicKeyPath), RS256, false, ['verify']);
    const signed = Buffer.from(parts[0] + '.' + parts[1]);
    try {
        const valid = await crypto.subtle.verify(RS256, key, Buffer.from(parts[2], 'base64url'), signed);
        return valid ? claims.sub : '';
    } catch (e) {
        return '';  // a signature of the wrong size
    }
}

/*
 * js_content of the socket the /_jwt cache asks on a miss: 204 with X-User-Id and X-Accel-Expires
 * (nginx caches the answer until the token expires), or 401.
 */
async function verify(r) {
    const token = r.headersIn['Access-Token'] || '';
    const subject = await verifiedSubject(token, r.variables.jwt_public_key_file);
    if (!subject) {
        r.return(401);
        return;
    }
    r.headersOut['X-User-Id'] = subject;
    r.headersOut['X-Accel-Expires'] = '@' + Math.floor(decodeJson(token.split('.')[1]).exp);
    r.return(204);
}

/* js_set: the `sub` of the access token cookie, NOT verified (the upload limit's key; see nginx.conf). */
function unverifiedSubject(r) {
    const parts = (r.variables.cookie_access_token || '').split('.');
    const claims = parts.length === 3 && BASE64URL.test(parts[1]) ? decodeJson(parts[1]) : null;
    return claims && typeof claims.sub === 'string' && SUBJECT.test(claims.sub) ? claims.sub : '';
}

const VIDEO_ID = /^[1-9][0-9]{0,17}$/;
/* How long one answer about a video's media stands: a change of visibility (a video turning ready or
 * hidden, deleted) or a revoked token takes effect within this. */
const VIDEO_ACCESS_SECONDS = 30;
const HIDDEN_VIDEO_SECONDS = 5;

/*
 * js_content of the socket the /_video_access cache asks on a miss: the token as in verify(), then the
 * catalog's answer for the video (/catalog_video): 204 with X-User-Id when the user may see it, 403
 * when not (hidden or unknown; the gateway answers 404), 401 for a bad token. Cached per video and
 * token for a short while, never past the token's `exp`.
 */
async function verifyVideoAccess(r) {
    const token = r.headersIn['Access-Token'] || '';
    const videoId = r.headersIn['Video-Id'] || '';
    const subject = await verifiedSubject(token, r.variables.jwt_public_key_file);
    if (!subject) {
        r.return(401);
        return;
    }
    if (!VIDEO_ID.test(videoId)) {
        r.return(403);
        return;
    }
    const reply = await r.subrequest('/catalog_video', { args: 'id=' + videoId, method: 'GET' });
    if (reply.status === 401) {
        r.return(401);
        return;
    }
    if (reply.status !== 200 && reply.status !== 404) {
        r.return(502);  // not cached: the catalog could not say
        return;
    }
    const visible = reply.status === 200;
    const exp = decodeJson(token.split('.')[1]).exp;
    const until = Date.now() / 1000 + (visible ? VIDEO_ACCESS_SECONDS : HIDDEN_VIDEO_SECONDS);
    r.headersOut['X-User-Id'] = subject;
    r.headersOut['X-Accel-Expires'] = '@' + Math.floor(Math.min(exp, until));
    r.return(visible ? 204 : 403);
}

export default { verify, verifyVideoAccess, unverifiedSubject };
