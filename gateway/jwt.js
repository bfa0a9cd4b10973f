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
 * js_content of the socket the /_jwt cache asks on a miss: 204 with X-User-Id and X-Accel-Expires
 * (nginx caches the answer for the recheck period, never past the token's `exp`), 401, or 503 when
 * auth cannot tell whether the session is live (nginx then answers a JSON 500: never a pass).
 */
async function verify(r) {
    const claims = await verifiedClaims(r.headersIn['Access-Token'] || '', r.variables.jwt_public_key_file);
    if (!claims) {
        r.return(401);
        return;
    }
    const session = await r.subrequest('/_session/' + claims.sid, { method: 'GET' });
    if (session.status !== 204) {
        if (session.status !== 404) {
            r.error('session check for a token answered ' + session.status);
        }
        r.return(session.status === 404 ? 401 : 503);
        return;
    }
    const recheckAt = Math.floor(Date.now() / 1000) + Number(r.variables.jwt_recheck_seconds);
    r.headersOut['X-User-Id'] = claims.sub;
    r.headersOut['X-Accel-Expires'] = '@' + Math.min(Math.floor(claims.exp), recheckAt);
    r.return(204);
}

export default { verify };
