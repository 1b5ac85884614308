// A license as GET /dashboard serves it. The projector renders it once, when the license changes,
// and stores the JSON; a read then joins strings instead of decoding and re-encoding objects.
import type { LicenseState } from "@keybox/contract";

export interface LicenseView {
  _id: string;
  key: string;
  duration: number;
  issuedAt: string;
  expiresAt: string;
  status: LicenseState["status"];
  services: string[];
  machineId?: string;
}

export interface RenderedLicense {
  /** The order key: createdAt, else issuedAt (ties go by id). */
  order: string;
  /** The license's response JSON, with the status it was stored with. */
  json: string;
  /** Set while the status is ACTIVE: from this time on the license is served as EXPIRED. */
  activeUntil?: string;
}

export function renderLicense(l: LicenseState): RenderedLicense {
  const view: LicenseView = {
    _id: l.id,
    key: l.key,
    duration: l.duration,
    issuedAt: l.issuedAt,
    expiresAt: l.expiresAt,
    status: l.status,
    services: l.services,
  };
  if (l.machineId !== undefined) view.machineId = l.machineId;
  const rendered: RenderedLicense = { order: l.createdAt ?? l.issuedAt, json: JSON.stringify(view) };
  if (l.status === "ACTIVE") rendered.activeUntil = l.expiresAt;
  return rendered;
}

const ACTIVE = '"status":"ACTIVE"';
const EXPIRED = '"status":"EXPIRED"';

/**
 * The license's JSON as of `nowIso`: expiry is a matter of time, so an ACTIVE license past its end
 * is EXPIRED before any event says so. The first `"status":"ACTIVE"` is the status field itself:
 * inside JSON string values quotes are escaped, so that text cannot occur there.
 */
export function licenseJsonAt(license: RenderedLicense, nowIso: string): string {
  return license.activeUntil !== undefined && license.activeUntil <= nowIso
    ? license.json.replace(ACTIVE, EXPIRED)
    : license.json;
}
