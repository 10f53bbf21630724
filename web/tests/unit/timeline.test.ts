import { describe, expect, it } from "vitest";
import { activeAt, clampToRange, conflictsAt, HOUR_MS, MINUTE_MS, nextPlayStep, openAt, plansAt, rangeOf, trackVisibleAt, visibleAt } from "../../src/timeline";

const at = (iso: string) => Date.parse(iso);

describe("time filtering", () => {
  const patrol = { start: "2022-10-08T08:00:00Z", end: "2022-10-08T11:00:00Z" };
  const site = { start: "2022-10-08T00:00:00Z", end: null };

  it("uses half-open windows: the start is in, the end is out", () => {
    expect(activeAt(patrol, at("2022-10-08T07:59:59Z"))).toBe(false);
    expect(activeAt(patrol, at("2022-10-08T08:00:00Z"))).toBe(true);
    expect(activeAt(patrol, at("2022-10-08T10:59:59Z"))).toBe(true);
    expect(activeAt(patrol, at("2022-10-08T11:00:00Z"))).toBe(false);
  });

  it("keeps a site with no end for ever after its start", () => {
    expect(activeAt(site, at("2030-01-01T00:00:00Z"))).toBe(true);
    expect(activeAt(site, at("2022-10-07T23:59:00Z"))).toBe(false);
  });

  it("shows everything when no instant is chosen, and filters when one is", () => {
    const items = [patrol, site];
    expect(visibleAt(items, (x) => x, null)).toEqual(items);
    expect(visibleAt(items, (x) => x, at("2022-10-08T12:00:00Z"))).toEqual([site]);
  });

  it("shows positions reported near the chosen instant only", () => {
    expect(trackVisibleAt("2022-10-08T09:00:00Z", null)).toBe(true);
    expect(trackVisibleAt("2022-10-08T09:00:00Z", at("2022-10-08T09:14:00Z"))).toBe(true);
    expect(trackVisibleAt("2022-10-08T09:00:00Z", at("2022-10-08T09:16:00Z"))).toBe(false);
  });

  it("spans the slider over whole hours from first start to last end", () => {
    const range = rangeOf([patrol, site, { start: "2022-10-08T14:10:00Z", end: "2022-10-08T16:30:00Z" }])!;
    expect(new Date(range.from_ms).toISOString()).toBe("2022-10-08T00:00:00.000Z");
    expect(new Date(range.to_ms).toISOString()).toBe("2022-10-08T17:00:00.000Z");
    expect(rangeOf([])).toBeNull();
    const single = rangeOf([{ start: "2022-10-08T08:00:00Z", end: null }])!;
    expect(single.to_ms - single.from_ms).toBe(HOUR_MS);
  });

  it("clamps and snaps the chosen instant", () => {
    const range = { from_ms: at("2022-10-08T00:00:00Z"), to_ms: at("2022-10-08T12:00:00Z") };
    expect(clampToRange(at("2022-10-09T00:00:00Z"), range)).toBe(range.to_ms);
    expect(new Date(clampToRange(at("2022-10-08T08:03:00Z"), range)).toISOString()).toBe("2022-10-08T08:05:00.000Z");
  });

  it("plays from the start, steps, and stops after the end", () => {
    const range = { from_ms: 0, to_ms: 60 * MINUTE_MS };
    expect(nextPlayStep(null, range, 5 * MINUTE_MS)).toBe(0);
    expect(nextPlayStep(range.to_ms, range, 5 * MINUTE_MS)).toBe(0);
    expect(nextPlayStep(10 * MINUTE_MS, range, 5 * MINUTE_MS)).toBe(15 * MINUTE_MS);
    expect(nextPlayStep(57 * MINUTE_MS, range, 5 * MINUTE_MS)).toBeNull();
  });
});

describe("replaying the record", () => {
  const v = (id: string, at: string, name: string | null) => ({ id, at, feature: name === null ? null : { name } });

  it("shows of each activity the version recorded at or before the instant", () => {
    const versions = [v("1", "2022-10-08T06:00:00Z", "first"), v("1", "2022-10-08T06:30:00Z", "delayed"), v("2", "2022-10-08T07:00:00Z", "later")];
    expect(plansAt(versions, Date.parse("2022-10-08T05:59:00Z"))).toEqual([]);
    expect(plansAt(versions, Date.parse("2022-10-08T06:29:59Z"))).toEqual([{ name: "first" }]);
    expect(plansAt(versions, Date.parse("2022-10-08T06:30:00Z"))).toEqual([{ name: "delayed" }]);
    expect(plansAt([...versions].reverse(), Date.parse("2022-10-08T08:00:00Z"))).toEqual([{ name: "later" }, { name: "delayed" }]);
  });

  it("drops an activity from its cancellation on", () => {
    const versions = [v("1", "2022-10-08T06:00:00Z", "plan"), v("1", "2022-10-08T07:00:00Z", null)];
    expect(plansAt(versions, Date.parse("2022-10-08T06:59:00Z"))).toEqual([{ name: "plan" }]);
    expect(plansAt(versions, Date.parse("2022-10-08T07:00:00Z"))).toEqual([]);
  });

  it("shows a conflict open between its opening and its resolution", () => {
    const c = { id: "1", state: "resolved", opened_at: "2022-10-08T06:00:00Z", resolved_at: "2022-10-08T06:30:00Z" };
    expect(openAt(c, Date.parse("2022-10-08T05:00:00Z"))).toBe(false);
    expect(conflictsAt([c], Date.parse("2022-10-08T06:10:00Z"))).toEqual([{ ...c, state: "open" }]);
    expect(conflictsAt([c], Date.parse("2022-10-08T06:30:00Z"))).toEqual([]);
    const open = { id: "2", state: "acknowledged", opened_at: "2022-10-08T06:00:00Z" };
    expect(conflictsAt([open], Date.parse("2030-01-01T00:00:00Z"))).toEqual([open]);
  });
});
