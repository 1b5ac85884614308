// Turns an owner's stored parts into the GET /dashboard body: joins, ordering and read-time expiry.
import type { ClientState, LicenseState, ProjectState, StoredPart } from "@keybox/shared";

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

export interface DashboardBody {
  message: "Dashboard fetched successfully";
  clientsCount: number;
  projectsCount: number;
  data: ClientView[];
}

/** Times are stored in canonical ISO form, so string order is time order; ties go by id. */
function byTimeThenId<T extends { id: string }>(time: (x: T) => string) {
  return (a: T, b: T) => {
    const ta = time(a);
    const tb = time(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  };
}
const clientOrder = byTimeThenId<ClientState>((c) => c.createdAt);
const projectOrder = byTimeThenId<ProjectState>((p) => p.createdAt);
const licenseOrder = byTimeThenId<LicenseState>((l) => l.createdAt ?? l.issuedAt);

function renderLicense(l: LicenseState, nowIso: string): LicenseView {
  // Expiry is a matter of time: an ACTIVE license past its end is EXPIRED before any event says so.
  const status = l.status === "ACTIVE" && l.expiresAt <= nowIso ? "EXPIRED" : l.status;
  const view: LicenseView = {
    _id: l.id,
    key: l.key,
    duration: l.duration,
    issuedAt: l.issuedAt,
    expiresAt: l.expiresAt,
    status,
    services: l.services,
  };
  if (l.machineId !== undefined) view.machineId = l.machineId;
  return view;
}

/**
 * Renders the dashboard from an owner's parts (client parts, project heads, license chunks; in any
 * order). Deleted entities, and everything under a missing or deleted parent, are left out;
 * children that arrived before their parent show up once it exists.
 */
export function renderDashboard(parts: readonly StoredPart[], now: Date): DashboardBody {
  const nowIso = now.toISOString();
  const clients: ClientState[] = [];
  const projects = new Map<string, { project: ProjectState | undefined; licenses: LicenseState[] }>();
  const projectOf = (clientId: string, projectId: string) => {
    const key = `${clientId}/${projectId}`;
    let entry = projects.get(key);
    if (!entry) projects.set(key, (entry = { project: undefined, licenses: [] }));
    return entry;
  };

  for (const { clientId, projectId, part } of parts) {
    if (part.kind === "client") {
      if (part.client.state) clients.push(part.client.state);
    } else if (part.kind === "project") {
      projectOf(clientId, projectId).project = part.project?.state ?? undefined;
    } else {
      const { licenses } = projectOf(clientId, projectId);
      for (const entry of Object.values(part.licenses)) if (entry.state) licenses.push(entry.state);
    }
  }

  const projectsByClient = new Map<string, { project: ProjectState; licenses: LicenseState[] }[]>();
  for (const { project, licenses } of projects.values()) {
    if (!project) continue;
    const list = projectsByClient.get(project.clientId) ?? [];
    list.push({ project, licenses });
    projectsByClient.set(project.clientId, list);
  }

  let projectsCount = 0;
  const data = clients.sort(clientOrder).map((client): ClientView => {
    const projects = (projectsByClient.get(client.id) ?? [])
      .sort((a, b) => projectOrder(a.project, b.project))
      .map(({ project, licenses }): ProjectView => ({
        _id: project.id,
        name: project.name,
        client: project.clientId,
        licenses: licenses.sort(licenseOrder).map((l) => renderLicense(l, nowIso)),
      }));
    projectsCount += projects.length;
    return { _id: client.id, name: client.name, email: client.email, owner: client.ownerId, projects };
  });

  return { message: "Dashboard fetched successfully", clientsCount: data.length, projectsCount, data };
}
