// An independent reference model of the dashboard, for the property and scale-out tests.
import type { DashboardBody } from "@keybox/query-api";
import type { ClientState, Entity, KeyboxEvent, LicenseState, ProjectState } from "@keybox/contract";

/** Latest live state per entity of `owner` (undefined when the latest is a delete). */
function latestStates(events: readonly KeyboxEvent[], owner: string) {
  const latest = new Map<string, KeyboxEvent>();
  for (const e of events) {
    const key = `${e.entity}/${e.entityId}`;
    if (e.ownerId === owner && (latest.get(key)?.version ?? -1) < e.version) latest.set(key, e);
  }
  const live = <T>(entity: Entity) =>
    [...latest.values()].filter((e) => e.entity === entity && !e.deleted).map((e) => e.data as T);
  return {
    clients: live<ClientState>("client"),
    projects: live<ProjectState>("project"),
    licenses: live<LicenseState>("license"),
  };
}

const byInstantThenId =
  <T extends { id: string }>(time: (x: T) => string) =>
  (a: T, b: T) =>
    Date.parse(time(a)) - Date.parse(time(b)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * What the dashboard must be, computed the simplest way: the latest version of each entity, joined
 * by the ids in the data, in the documented order and with read-time expiry. Independent of the
 * projection rules and the store, so tests can hold them to it.
 */
export function referenceDashboard(
  events: readonly KeyboxEvent[],
  owner: string,
  now: Date,
  clientId?: string,
): DashboardBody {
  const { clients, projects, licenses } = latestStates(events, owner);
  const data = clients
    .filter((c) => clientId === undefined || c.id === clientId)
    .sort(byInstantThenId((c) => c.createdAt))
    .map((c) => ({
      _id: c.id,
      name: c.name,
      email: c.email,
      owner: c.ownerId,
      projects: projects
        .filter((p) => p.clientId === c.id)
        .sort(byInstantThenId((p) => p.createdAt))
        .map((p) => ({
          _id: p.id,
          name: p.name,
          client: p.clientId,
          licenses: licenses
            .filter((l) => l.projectId === p.id)
            .sort(byInstantThenId((l) => l.createdAt ?? l.issuedAt))
            .map((l) => ({
              _id: l.id,
              key: l.key,
              duration: l.duration,
              issuedAt: l.issuedAt,
              expiresAt: l.expiresAt,
              status: l.status === "ACTIVE" && Date.parse(l.expiresAt) <= now.getTime() ? "EXPIRED" : l.status,
              services: l.services,
              ...(l.machineId != null && { machineId: l.machineId }),
            })),
        })),
    }));
  const projectsCount = data.reduce((n, c) => n + c.projects.length, 0);
  return { message: "Dashboard fetched successfully", clientsCount: data.length, projectsCount, data };
}
