// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

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
// now() measures intervals; wallMs() dates what is stored (milliseconds since the Unix epoch),
// so a stored age and a timer agree on how much time passed.
class Clock {
public:
    virtual ~Clock() = default;
    virtual SteadyTime now() const = 0;
    virtual std::int64_t wallMs() const = 0;
};

class SystemClock final : public Clock {
public:
    SteadyTime now() const override { return std::chrono::steady_clock::now(); }
    std::int64_t wallMs() const override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
};

// A clock that moves only when told to (tests). Its wall time starts at the real time it was
// made and moves with advance().
class ManualClock final : public Clock {
public:
    SteadyTime now() const override { return m_now; }
    std::int64_t wallMs() const override { return m_wallStart + m_advanced.count(); }
    void advance(std::chrono::milliseconds by) {
        m_now += by;
        m_advanced += by;
    }

private:
    SteadyTime m_now{std::chrono::hours(1)};
    std::int64_t m_wallStart = SystemClock().wallMs();
    std::chrono::milliseconds m_advanced{0};
};

} // namespace llmproxy
