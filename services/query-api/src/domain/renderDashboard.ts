// Turns an owner's stored parts into the GET /dashboard body: joins, ordering and read-time
// expiry. Licenses are stored already rendered, so the body is assembled as JSON text: a large
// tenant's read joins strings instead of building and serialising an object per license.
import type { ClientState, ProjectState } from "@keybox/contract";
import { licenseJsonAt, type LicenseView, type RenderedLicense, type StoredPart } from "@keybox/read-model";

export type { LicenseView };

export interface ProjectView {
  _id: string;
  name: string;
  client: string;
  licenses: LicenseView[];
}

export interface ClientView {
  _id: string;
  name: string;
  email: string;
  owner: string;
  projects: ProjectView[];
}

/** A rendered dashboard: its JSON text, and until when that text is right (see renderDashboard). */
export interface RenderedDashboard {
  json: string;
  /**
   * The first time at which an ACTIVE license in it passes its end and is served as EXPIRED
   * (ISO form); undefined when the text stays right until the read model changes.
   */
  validUntil: string | undefined;
}

/** The shape of the JSON text renderDashboard returns. */
export interface DashboardBody {
  message: "Dashboard fetched successfully";
  clientsCount: number;
  projectsCount: number;
  data: ClientView[];
}

/** Times are stored in canonical ISO form, so string order is time order; ties go by id. */
function byTimeThenId<T>(time: (x: T) => string, id: (x: T) => string) {
  return (a: T, b: T) => {
    const ta = time(a);
    const tb = time(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    const ia = id(a);
    const ib = id(b);
    return ia < ib ? -1 : ia > ib ? 1 : 0;
  };
}
const clientOrder = byTimeThenId<ClientState>(
  (c) => c.createdAt,
  (c) => c.id,
);
const projectOrder = byTimeThenId<ProjectState>(
  (p) => p.createdAt,
  (p) => p.id,
);
type License = [id: string, rendered: RenderedLicense];
const licenseOrder = byTimeThenId<License>(
  ([, l]) => l.order,
  ([id]) => id,
);

const str = JSON.stringify;

/**
 * Renders the dashboard from an owner's parts (client parts, project heads, license chunks; in any
 * order) as JSON text of a DashboardBody, as of `now`. Deleted entities, and everything under a missing or
 * deleted parent, are left out; children that arrived before their parent show once it exists.
 */
export function renderDashboard(parts: readonly StoredPart[], now: Date): RenderedDashboard {
  const nowIso = now.toISOString();
  let validUntil: string | undefined;
  const clients: ClientState[] = [];
  const projects = new Map<string, { project: ProjectState | undefined; licenses: License[] }>();
  const projectOf = (clientId: string, projectId: string) => {
    const key = `${clientId}/${projectId}`;
    let entry = projects.get(key);
    if (!entry) {
      entry = { project: undefined, licenses: [] };
      projects.set(key, entry);
    }
    return entry;
  };

  for (const { clientId, projectId, part } of parts) {
    if (part.kind === "client") {
      if (part.client.state) clients.push(part.client.state);
    } else if (part.kind === "project") {
      projectOf(clientId, projectId).project = part.project?.state ?? undefined;
    } else {
      const { licenses } = projectOf(clientId, projectId);
      for (const { id, state } of part.licenses) if (state) licenses.push([id, state]);
    }
  }

  const projectsByClient = new Map<string, { project: ProjectState; licenses: License[] }[]>();
  for (const { project, licenses } of projects.values()) {
    if (!project) continue;
    const list = projectsByClient.get(project.clientId) ?? [];
    list.push({ project, licenses });
    projectsByClient.set(project.clientId, list);
  }

  let projectsCount = 0;
  const data = clients.sort(clientOrder).map((client) => {
    const projectsJson = (projectsByClient.get(client.id) ?? [])
      .sort((a, b) => projectOrder(a.project, b.project))
      .map(({ project, licenses }) => {
        const licensesJson = licenses.sort(licenseOrder).map(([, l]) => {
          if (
            l.activeUntil !== undefined &&
            l.activeUntil > nowIso &&
            !(validUntil !== undefined && validUntil <= l.activeUntil)
          ) {
            validUntil = l.activeUntil;
          }
          return licenseJsonAt(l, nowIso);
        });
        return `{"_id":${str(project.id)},"name":${str(project.name)},"client":${str(project.clientId)},"licenses":[${licensesJson.join(",")}]}`;
      });
    projectsCount += projectsJson.length;
    return `{"_id":${str(client.id)},"name":${str(client.name)},"email":${str(client.email)},"owner":${str(client.ownerId)},"projects":[${projectsJson.join(",")}]}`;
  });

  const json = `{"message":"Dashboard fetched successfully","clientsCount":${data.length},"projectsCount":${projectsCount},"data":[${data.join(",")}]}`;
  return { json, validUntil };
}
