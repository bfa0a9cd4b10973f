/*
 * Access-token check for the video routes (njs 0.7.9 and later, WebCrypto).
 *
 * The `access_token` cookie must be a JWT signed RS256 with auth's key (KEYS_DIR/jwt_public.pem), of
 * type "access", with a user id in `sub`, not expired, and its login session (`sid`) still live: auth
 * answers that at /internal/sessions/<sid> (404 after logout, a password reset or refresh-token reuse).
 * nginx asks through `auth_request /_jwt`, which caches each positive answer for at most
 * GATEWAY_TOKEN_RECHECK_SECONDS (and never past the token's `exp`): a logged-out token stops working
 * within that time, while a viewer's segments cost one RSA check and one auth call per period. njs
 * 0.7.9 keeps nothing between requests and importing the RSA key costs ~130 us, nearly all of a check.
 */

import fs from 'fs';

const RS256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
const CLOCK_SKEW_SECONDS = 30;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const SUBJECT = /^[A-Za-z0-9_-]{1,64}$/;
const SESSION = /^[A-Za-z0-9-]{1,64}$/;

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
        && typeof claims.sid === 'string' && SESSION.test(claims.sid)
        && isTime(claims.exp) && claims.exp > now
        && (claims.nbf === undefined || (isTime(claims.nbf) && claims.nbf <= now + CLOCK_SKEW_SECONDS))
        && (claims.iat === undefined || (isTime(claims.iat) && claims.iat <= now + CLOCK_SKEW_SECONDS));
}

function publicKeyDer(path) {
    const pem = fs.readFileSync(path, 'utf8');
    return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
}

/* The claims of a validly signed, unexpired access token, or null (cheap checks first, the signature last). */
async function verifiedClaims(token, publicKeyPath) {
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every(part => BASE64URL.test(part))) {
        return null;
    }
    const header = decodeJson(parts[0]);
    const claims = decodeJson(parts[1]);
    if (!header || header.alg !== 'RS256' || header.crit !== undefined
        || !claims || !claimsValid(claims, Date.now() / 1000)) {
        return null;
    }
    const key = await crypto.subtle.importKey('spki', publicKeyDer(publicKeyPath), RS256, false, ['verify']);
    const signed = Buffer.from(parts[0] + '.' + parts[1]);
    try {
        const valid = await crypto.subtle.verify(RS256, key, Buffer.from(parts[2], 'base64url'), signed);
        return valid ? claims : null;
    } catch (e) {
        return null;  // a signature of the wrong size
    }
}

/*
 * The claims of a valid access token whose login session is live, or a status to answer instead:
 * 401 for a bad token or an ended session, 503 when auth cannot tell (never a pass).
 */
async function liveClaims(r, token) {
    const claims = await verifiedClaims(token, r.variables.jwt_public_key_file);
    if (!claims) {
        return { status: 401 };
    }
    const session = await r.subrequest('/_session/' + claims.sid, { method: 'GET' });
    if (session.status === 204) {
        return { claims };
    }
    if (session.status !== 404) {
        r.error('session check for a token answered ' + session.status);
    }
    return { status: session.status === 404 ? 401 : 503 };
}

/* When a positive answer must be asked again: after `seconds`, the recheck period, or `exp`. */
function cachedUntil(r, claims, seconds) {
    const now = Date.now() / 1000;
    const recheck = Number(r.variables.jwt_recheck_seconds);
    return '@' + Math.floor(Math.min(claims.exp, now + seconds, now + recheck));
}

/*
 * js_content of the socket the /_jwt cache asks on a miss: 204 with X-User-Id and X-Accel-Expires
 * (nginx caches the answer for the recheck period, never past the token's `exp`), 401, or 503 when
 * auth cannot tell whether the session is live (nginx then answers a JSON 500: never a pass).
 */
async function verify(r) {
    const live = await liveClaims(r, r.headersIn['Access-Token'] || '');
    if (!live.claims) {
        r.return(live.status);
        return;
    }
    r.headersOut['X-User-Id'] = live.claims.sub;
    r.headersOut['X-Accel-Expires'] = cachedUntil(r, live.claims, Infinity);
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
    const live = await liveClaims(r, token);
    if (!live.claims) {
        r.return(live.status);
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
    r.headersOut['X-User-Id'] = live.claims.sub;
    r.headersOut['X-Accel-Expires'] = cachedUntil(r, live.claims, visible ? VIDEO_ACCESS_SECONDS : HIDDEN_VIDEO_SECONDS);
    r.return(visible ? 204 : 403);
}

export default { verify, verifyVideoAccess, unverifiedSubject };
