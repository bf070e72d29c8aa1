// What a header name may be (an RFC 9110 token), for the sidecar's configuration and the
// guard's settings alike: a name that cannot occur on the wire would silently match nothing.
import * as z from './zod.js';

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export const headerName = z.string().check(z.regex(HEADER_NAME, 'must be a valid HTTP header name'), z.toLowerCase());
/** A header name, or '' for none. */
export const optionalHeaderName = z._default(z.union([z.literal(''), headerName]), '');
