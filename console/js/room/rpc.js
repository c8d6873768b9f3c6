// The broker's services as the room calls them, and their errors as the room reads
// them: code names, whether opening the session again could help, a line for the user.

import { GrpcError } from '../grpcweb.js';

export const SESSION = 'teleconsult.v1.SessionService';
export const SCHEDULING = 'teleconsult.v1.SchedulingService';

// Codes after which opening again cannot help (the call was refused, not cut).
const PERMANENT = new Set([
  'INVALID_ARGUMENT', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'FAILED_PRECONDITION', 'UNAUTHENTICATED', 'UNIMPLEMENTED', 'OUT_OF_RANGE',
]);
const CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION',
  'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS',
  'UNAUTHENTICATED',
];

export function codeName(error) {
  if (!error) return '';
  const code = error.codeName ?? error.code_name ?? error.code;
  if (typeof code === 'number') return CODE_NAMES[code] ?? String(code);
  return typeof code === 'string' ? code : '';
}

export function isGrpcError(error) {
  return (typeof GrpcError === 'function' && error instanceof GrpcError) || codeName(error) !== '';
}

/** The broker refused the call (no consent, outside the window, not a participant…). */
export function isRefusal(error) {
  return !!error && isGrpcError(error) && PERMANENT.has(codeName(error));
}

export function errorText(error) {
  const code = codeName(error);
  const message = error?.message ?? String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
