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

/* The claims of a valid access token, or null (cheap checks first, the signature last). */
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

async function answer(r, adminOnly) {
    const claims = await verifiedClaims(r.headersIn['Access-Token'] || '', r.variables.jwt_public_key_file);
    if (!claims) {
        r.return(401);
        return;
    }
    const isAdmin = claims.is_admin === true;
    if (adminOnly && !isAdmin) {
        r.return(403);
        return;
    }
    r.headersOut['X-User-Id'] = claims.sub;
    r.headersOut['X-User-Admin'] = isAdmin ? 'true' : 'false';
    r.headersOut['X-Accel-Expires'] = '@' + Math.floor(claims.exp);
    r.return(204);
}

/*
 * js_content of the socket the /_jwt cache asks on a miss: 204 with X-User-Id, X-User-Admin (the
 * is_admin claim, 'true' or 'false') and X-Accel-Expires (nginx caches the answer until the token
 * expires), or 401.
 */
async function verify(r) {
    await answer(r, false);
}

/* The same for the admin site (/_jwt_admin): 403 unless the token has is_admin: true. */
async function verifyAdmin(r) {
    await answer(r, true);
}

export default { verify, verifyAdmin };
