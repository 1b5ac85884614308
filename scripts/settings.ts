// The settings of both services together, for `npm start` (one process runs both) and the tests
// that run the whole pipeline in one process.
import { projectorSettings } from "@keybox/projector";
import { queryApiSettings } from "@keybox/query-api";

export const allInOneSettings = projectorSettings.extend(queryApiSettings.shape);
