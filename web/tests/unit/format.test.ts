import { describe, expect, it } from "vitest";
import type { Message } from "../../src/api";
import { describeActivity, describeConflictSides, formatAltitudes, formatCountdown, formatDistance, formatTime, formatWindow } from "../../src/format";
import { deadline_ms } from "../../src/panels/hotline";

describe("formatting", () => {
  it("writes distances in m below a kilometre, one decimal below ten", () => {
    expect(formatDistance(640)).toBe("640 m");
    expect(formatDistance(1_450)).toBe("1.4 km");
    expect(formatDistance(55_000)).toBe("55 km");
    expect(formatDistance(Number.NaN)).toBe("—");
  });

  it("writes UTC times with a Z, and the date only when it differs from the reference", () => {
    expect(formatTime("2022-10-08T08:30:00Z")).toBe("2022-10-08 08:30Z");
    expect(formatTime("2022-10-08T08:30:00Z", "2022-10-08T23:00:00Z")).toBe("08:30Z");
    expect(formatTime(null)).toBe("open");
    expect(formatTime("not a time")).toBe("not a time");
    expect(formatWindow("2022-10-08T08:30:00Z", "2022-10-08T11:00:00Z")).toBe("2022-10-08 08:30Z – 11:00Z");
    expect(formatWindow("2022-10-08T08:30:00Z", "2022-10-09T01:00:00Z")).toBe("2022-10-08 08:30Z – 2022-10-09 01:00Z");
  });

  it("counts down to a deadline and up after it", () => {
    expect(formatCountdown(245)).toBe("due in 4:05");
    expect(formatCountdown(-432)).toBe("7:12 late");
  });

  it("writes altitude bands, open at either end", () => {
    expect(formatAltitudes(150, 600)).toBe("150–600 m");
    expect(formatAltitudes(undefined, undefined)).toBe("all altitudes");
    expect(formatAltitudes(undefined, 300)).toBe("surface–300 m");
  });

  it("puts a message's acknowledgement deadline at sending time plus ack_within_s", () => {
    const message = { sent_at: "2022-10-08T08:00:00Z", ack_within_s: 300 } as Message;
    expect(deadline_ms(message)).toBe(Date.parse("2022-10-08T08:05:00Z"));
    expect(deadline_ms({ ...message, ack_within_s: undefined })).toBeNull();
  });
});

describe("describeActivity", () => {
  it("names a withheld need-to-know activity by its owner, never as null", () => {
    expect(describeActivity(null, "UN OCHA")).toBe("a need-to-know activity of UN OCHA");
    expect(describeActivity("null", "UN OCHA")).not.toContain("null");
  });
  it("prefers the name, then the owner's id", () => {
    expect(describeActivity("a7", "USA", "Patrol Tirbespi")).toBe("Patrol Tirbespi");
    expect(describeActivity("a7", "Russia")).toBe("Russia's activity a7");
  });
});

describe("describeConflictSides", () => {
  const base = {
    id: "9",
    parties: ["Russia", "USA"] as [string, string],
    start: "2022-10-08T06:00:00Z",
    end: null,
    min_distance_m: 0,
    required_m: 0,
    location: { type: "Point" as const, coordinates: [38.66, 33.5] },
    state: "open",
  };
  const tanf = { type: "Feature" as const, id: 4, geometry: { type: "Point" as const, coordinates: [38.66, 33.5] }, properties: { kind: "exclusion" as const, name: "al-Tanf 55 km" } };
  it("labels a zone conflict's second side with the zone's kind and name, not as a withheld activity", () => {
    const sides = describeConflictSides({ ...base, activities: ["12", null], zone: "4" }, new Map(), new Map([["4", tanf]]));
    expect(sides).toEqual(["Russia's activity 12", "exclusion zone al-Tanf 55 km"]);
  });
  it("falls back to the zone id when the zone is not in view", () => {
    expect(describeConflictSides({ ...base, activities: ["12", null], zone: "4" }, new Map(), new Map())[1]).toBe("zone 4");
  });
  it("still names a withheld activity in an activity conflict", () => {
    expect(describeConflictSides({ ...base, activities: ["12", null] }, new Map(), new Map())[1]).toBe("a need-to-know activity of USA");
  });
});
