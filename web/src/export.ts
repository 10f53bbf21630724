// Files the page saves: the server's export and incident evidence, the log
// checkpoint. What goes in them is the server's answer, byte for byte
// (need-to-know is applied server-side; GeoJSON and KML are written there).

/** Offers text as a file download. A Blob URL keeps it CSP-friendly (no
 *  data: navigation, no inline script). */
export function download(filename: string, mime: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: mime }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
