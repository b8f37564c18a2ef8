/**
 * A request path as error messages quote it: cut at 100 characters. Quoted whole, a 12 KB path
 * came back as a 12 KB answer (outside security QA).
 */
const QUOTED_AT_MOST = 100;

export function pathInMessage(path: string): string {
  return path.length > QUOTED_AT_MOST ? `${path.slice(0, QUOTED_AT_MOST)}... (${path.length} characters)` : path;
}
