// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <algorithm>
#include <chrono>

namespace llmproxy {

using SteadyTime = std::chrono::steady_clock::time_point;

// The longest wait any timer is given. QTimer takes int milliseconds (24.8 days at most), and
// intervals come from the network (Retry-After) and the command line: every computed interval
// goes through timerInterval() before a timer starts with it.
inline constexpr std::chrono::milliseconds MaxTimerInterval{std::chrono::hours(24)};
constexpr std::chrono::milliseconds timerInterval(std::chrono::milliseconds wanted) {
    return std::clamp(wanted, std::chrono::milliseconds::zero(), MaxTimerInterval);
}

// Time is injected wherever behaviour depends on it, so windows, polls and deadlines can be
// tested without sleeping.
class Clock {
public:
    virtual ~Clock() = default;
    virtual SteadyTime now() const = 0;
};

class SystemClock final : public Clock {
public:
    SteadyTime now() const override { return std::chrono::steady_clock::now(); }
};

// A clock that moves only when told to (tests).
class ManualClock final : public Clock {
public:
    SteadyTime now() const override { return m_now; }
    void advance(std::chrono::milliseconds by) { m_now += by; }

private:
    SteadyTime m_now{std::chrono::hours(1)};
};

} // namespace llmproxy
