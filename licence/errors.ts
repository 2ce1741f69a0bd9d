import { HubError } from '../core/errors.ts';

/** The licence room's errors: HubErrors with the contract's codes, and the details a caller can act on. */
export function licenceNotFound(identifier: string): HubError {
  return new HubError('NOT_FOUND', `licence ${identifier} not found`, { identifier });
}

/** A lifecycle act the licence's current status does not allow (e.g. reinstating a licence that is not suspended). */
export function statusConflict(identifier: string, status: string, act: string): HubError {
  return new HubError('CONFLICT', `licence ${identifier} is ${status} and cannot be ${act}`, { identifier, status });
}
