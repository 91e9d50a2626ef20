/* After git's banned.h: functions that are too easy to misuse. Included by
 * every project .c file through hr_compat.h users at the end of includes. */
#ifndef HR_BANNED_H
#define HR_BANNED_H

#define HR_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) HR_BANNED(strcpy)
#undef strcat
#define strcat(x, y) HR_BANNED(strcat)
#undef sprintf
#define sprintf(...) HR_BANNED(sprintf)
#undef strtok
#define strtok(x, y) HR_BANNED(strtok)
#undef atoi
#define atoi(x) HR_BANNED(atoi)

#endif
